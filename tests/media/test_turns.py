"""A stream's turns without a socket: frames in, a reply out on a recording channel."""

import json
import threading

import pytest

from ivr import audio
from ivr.app import create_app
from ivr.media.turns import StreamTurns
from ivr.sim.script import voice_ulaw

from ..conftest import make_settings
from ..conftest import wait_until as wait_for

SID = "CA" + "4" * 32
FAKES = {"asr_engine": "fake", "llm_engine": "fake", "tts_engine": "fake", "turn_mode": "stream",
         "resp_min_delay_ms": 0, "resp_max_delay_ms": 0}


class RecordingChannel:
    """The MediaChannel a StreamTurns writes to, keeping what it was sent."""

    def __init__(self):
        self.stream_sid = "MZ" + "4" * 32
        self.closed = threading.Event()
        self.messages: list[dict] = []
        self.frames = 0

    def send(self, message: dict) -> bool:
        self.messages.append(json.loads(json.dumps(message)))
        return True

    def send_media_frames(self, frames, stop=None) -> int:
        sent = 0
        for _ in frames:
            if stop is not None and stop.is_set():
                break
            sent += 1
        self.frames += sent
        return sent

    def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed.set()


INSPECTOR = "inspector-token-for-turns"


@pytest.fixture
def app(tmp_path):
    app = create_app(make_settings(tmp_path, **{**FAKES, "reply_mode": "stream"},
                                   inspector_token=INSPECTOR))
    yield app
    app.extensions["ivr"].close()


@pytest.fixture
def runtime(app):
    return app.extensions["ivr"]


def speak(turns: StreamTurns, text: str, silence_frames: int = 40) -> None:
    frames = audio.frames_of(voice_ulaw(text)) + [audio.silence_ulaw(1)] * silence_frames
    for frame in frames:
        turns.feed(audio.ulaw_to_pcm16(frame))


def test_an_utterance_becomes_a_reply_on_the_channel_with_its_mark(runtime):
    runtime.calls.answer(SID, "stream", "stream", "in-progress")
    channel = RecordingChannel()
    turns = StreamTurns(runtime, channel, SID, 1)
    speak(turns, "שלום, מה שעות הפתיחה שלכם?")
    wait_for(lambda: any(m["event"] == "mark" for m in channel.messages))
    assert channel.frames > 0 and channel.messages[-1]["mark"]["name"] == "reply-2"
    assert runtime.calls.get(SID)["turn"] == 2
    assert turns.mark_played("reply-2") and not turns.mark_played("never-sent")


def test_a_key_while_the_line_speaks_clears_it_and_is_the_next_turn(runtime):
    runtime.calls.answer(SID, "stream", "stream", "in-progress")
    channel = RecordingChannel()
    turns = StreamTurns(runtime, channel, SID, 1)
    speak(turns, "שלום")
    wait_for(lambda: any(m["event"] == "mark" for m in channel.messages))
    turns.dispatch_text("1")  # the reply's mark has not come back: the line is still speaking
    assert {"event": "clear"} in channel.messages
    wait_for(lambda: [m["text"] for m in runtime.calls.history(SID) if m["role"] == "user"][-1:]
             == ["1"])


def test_a_chunk_streamed_as_it_is_made_is_heard_for_as_long_as_its_audio_went_out():
    from ivr.media.turns import PlaySchedule
    schedule = PlaySchedule(clock=lambda: 100.0)  # every batch sent at once
    schedule.add("אחת שתיים שלוש ארבע", 0.0)  # its audio comes in batches
    schedule.extend(1.0)
    schedule.extend(1.0)
    assert schedule.heard(101.0) == "אחת שתיים …"  # half of its two seconds
    assert schedule.heard(102.5) == "אחת שתיים שלוש ארבע"


def test_a_click_is_no_turn_but_a_dropped_utterance_on_the_calls_inspector_page(app, runtime):
    runtime.calls.answer(SID, "stream", "stream", "in-progress")
    channel = RecordingChannel()
    turns = StreamTurns(runtime, channel, SID, 1)
    click = audio.pcm16_to_ulaw(audio.beep_pcm16(100, 440, 4000))  # 0.1 s: 5 voiced frames
    for frame in audio.frames_of(click + audio.silence_ulaw(40)):
        turns.feed(audio.ulaw_to_pcm16(frame))
    events = runtime.store.events(SID)
    assert "UTTERANCE" not in [e["kind"] for e in events] and channel.messages == []
    (dropped,) = [e["detail"] for e in events if e["kind"] == "UTTERANCE_DROPPED"]
    assert dropped == {"sid": channel.stream_sid, "reason": "short", "sec": 0.24, "voiced": 5}
    page = app.test_client().get(f"/inspector/calls/{SID}",
                                 headers={"Authorization": f"Bearer {INSPECTOR}"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "UTTERANCE_DROPPED" in html
    assert "reason</span> <bdi class=\"\">short</bdi>" in html


def test_a_caller_cut_off_by_the_streams_end_is_a_dropped_utterance(runtime):
    runtime.calls.answer(SID, "stream", "stream", "in-progress")
    channel = RecordingChannel()
    turns = StreamTurns(runtime, channel, SID, 1)
    frames = [audio.ulaw_to_pcm16(f) for f in audio.frames_of(voice_ulaw("שלום, מה שעות הפתיחה"))]
    while not audio.rms(frames[-1]):
        frames.pop()  # the stream stops as the caller says the last sound
    for pcm in frames:
        turns.feed(pcm)
    turns.close()
    (dropped,) = [e["detail"] for e in runtime.store.events(SID)
                  if e["kind"] == "UTTERANCE_DROPPED"]
    assert dropped["reason"] == "stream-ended" and dropped["sec"] > 1
    assert "UTTERANCE" not in [e["kind"] for e in runtime.store.events(SID)]


def test_an_utterance_that_ends_after_the_hang_up_is_a_dropped_utterance(runtime):
    runtime.calls.answer(SID, "stream", "stream", "in-progress")
    channel = RecordingChannel()
    turns = StreamTurns(runtime, channel, SID, 1)
    runtime.watchdog.cancel(SID)  # the caller hung up; the last frames are still coming in
    speak(turns, "שלום, מה שעות הפתיחה שלכם?")
    dropped = [e["detail"] for e in runtime.store.events(SID) if e["kind"] == "UTTERANCE_DROPPED"]
    assert [d["reason"] for d in dropped] == ["call-ended"] and channel.messages == []


def test_a_caller_speaking_while_the_line_moves_the_call_to_the_owner_starts_no_turn(runtime):
    """After the reply before a transfer is heard to its end, the call leaves this stream for a
    <Dial>: words said meanwhile are no turn (no phantom answer in the call's turns)."""
    runtime.calls.answer(SID, "stream", "stream", "in-progress")
    moved = []
    runtime.delivery.update = lambda call_sid, doc, *a, **k: moved.append(doc) or True
    channel = RecordingChannel()
    turns = StreamTurns(runtime, channel, SID, 1)
    speak(turns, "שלום, מה שעות הפתיחה שלכם?")
    wait_for(lambda: any(m["event"] == "mark" for m in channel.messages))
    turns.ending_after = ("reply-2", "transfer")  # what a reply with a TRANSFER action leaves
    assert turns.mark_played("reply-2")
    speak(turns, "דנה כהן")
    drops = wait_for(lambda: [e for e in runtime.store.events(SID)
                              if e["kind"] == "UTTERANCE_DROPPED"])
    assert drops[0]["detail"]["reason"] == "thinking"
    wait_for(lambda: moved)  # the <Dial> goes out on the turn pool
    assert runtime.calls.get(SID)["turn"] == 2
    assert [m["mark"]["name"] for m in channel.messages if m["event"] == "mark"] == ["reply-2"]


def fork_over_plays(runtime, moved: list) -> tuple[StreamTurns, RecordingChannel]:
    """Turn 1's reply is playing (the call is on turn 2, its stream not started) and a fork
    listens over the Plays; calls.update is recorded, not sent."""
    runtime.calls.answer(SID, "stream", "play", "in-progress")
    assert runtime.calls.advance_turn(SID, 1)
    runtime.delivery.update = lambda call_sid, doc, *a, **k: moved.append(doc) or True
    channel = RecordingChannel()
    return StreamTurns(runtime, channel, SID, 2, fork=True), channel


def test_a_caller_over_the_plays_stops_them_for_the_turns_stream(runtime):
    moved = []
    fork, channel = fork_over_plays(runtime, moved)
    speak(fork, "רגע, עוד שאלה")
    wait_for(lambda: moved)
    assert '<Stop><Stream name="listen-2" /></Stop><Connect' in moved[0]
    assert not channel.closed.is_set()  # Twilio ends the fork (the <Stop>), not the line


def test_a_fork_left_running_over_a_record_turn_takes_nothing_back(runtime):
    """The watchdog moved the call to <Record> while the fork still listens (a fork outlives
    the document that started it): the caller answering the <Record> is no barge-in, so no
    calls.update takes the call back from <Record> (seen in the cluster: the caller then
    waited three minutes for a reply that was stale); the fork closes."""
    moved = []
    fork, channel = fork_over_plays(runtime, moved)
    assert runtime.calls.fall_back_to_record(SID, 2, "no stream start for turn 2",
                                             unstarted=True)
    speak(fork, "רגע, עוד שאלה")
    wait_for(lambda: channel.closed.is_set())
    assert moved == []
    assert [e for e in runtime.store.events(SID) if e["kind"] == "BARGE_IN_IGNORED"]
