"""A reply being written and synthesised: chunks in order, waits, ends, and cuts."""

import threading
from pathlib import Path

import pytest

from ivr.reply import LiveAudio, PendingReplies, SpokenReply

MP3 = Path("chunk.mp3")


def test_players_get_chunks_in_order_whatever_order_they_are_ready_in():
    reply = SpokenReply()
    first, second = reply.add("כן, בשמחה,"), reply.add("אנחנו פתוחים עד שש.")
    reply.set_audio(second, MP3, 2.0)
    assert reply.ready_from(0) == []  # the second is ready, the first is not: nothing yet
    reply.set_audio(first, MP3, 0.7)
    assert [c.text for c in reply.ready_from(0)] == ["כן, בשמחה,", "אנחנו פתוחים עד שש."]
    assert not reply.ends_at(2)
    reply.close()
    assert reply.ends_at(2) and reply.wait(2, 0) is None


def test_a_player_waits_for_a_chunk_being_synthesised():
    reply = SpokenReply()
    reply.add("שלום.")
    ready = threading.Timer(0.05, reply.set_audio, args=(0, MP3, 1.0))
    ready.start()
    assert reply.wait(0, 60).text == "שלום."


def test_a_player_of_the_last_chunk_waits_for_the_close_once_all_are_added():
    """The writer closes the reply once the turn's history is written: a player that has every
    chunk waits for that close (then the call listens again), not while chunks may follow."""
    reply = SpokenReply()
    reply.set_audio(reply.add("שלום."), MP3, 1.0)
    reply.settle(1, 60)  # more may be written: it returns at once, the reply still open
    assert not reply.ends_at(1)
    reply.all_added()
    waiting = threading.Thread(target=reply.settle, args=(1, 60))
    waiting.start()
    waiting.join(0.1)
    assert waiting.is_alive()  # every chunk is there: it waits for the close
    reply.close()
    waiting.join(60)
    assert not waiting.is_alive() and reply.ends_at(1)


def test_a_cancelled_reply_ends_the_wait_of_its_players():
    reply = SpokenReply()
    reply.add("שלום.")
    threading.Timer(0.05, reply.cancel).start()
    assert reply.wait(0, 60) is None


def test_a_chunk_not_ready_in_time_is_a_timeout_and_a_reply_not_yet_written_too():
    reply = SpokenReply()
    reply.add("שלום.")
    with pytest.raises(TimeoutError):
        reply.wait(0, 0.01)
    with pytest.raises(TimeoutError):
        reply.wait(1, 0.01)  # the writer may still add it


def test_a_cut_drops_what_follows_and_a_cancelled_reply_takes_no_more_chunks():
    reply = SpokenReply()
    for text in ("א.", "ב.", "ג."):
        reply.add(text)
    reply.set_audio(0, MP3, 1.0)
    reply.set_audio(2, MP3, 1.0)  # synthesised before the one in front of it failed
    reply.fail(1, MP3, 1.0, "tts-error")
    assert reply.text == "א. ב." and reply.ends_at(2)
    assert [c.fallback for c in reply.ready_from(0)] == ["", "tts-error"]
    reply.set_audio(2, MP3, 1.0)  # a late synthesis of a chunk cut off is ignored
    other = SpokenReply()
    other.cancel()
    assert other.add("ד.") is None and other.played.is_set()


def test_stage_marks_keep_their_first_time_in_ms_after_the_end_of_speech():
    reply = SpokenReply(started=100.0)
    reply.marks["asr"] = 100.35
    reply.mark("asr")  # a later mark of the same stage is ignored
    assert reply.ms()["asr"] == 350


def test_pending_replies_are_found_by_call_and_turn_and_dropped_cancelled():
    pending, reply = PendingReplies(kept=1), SpokenReply()
    pending.put("CA1", 3, "stream", reply)
    assert pending.get("CA1", 3) == ("stream", reply) and pending.get("CA1", 2) is None
    newer = SpokenReply()
    pending.put("CA2", 1, "record", newer)  # over the bound: the oldest goes, cancelled
    assert pending.get("CA1", 3) is None and reply.cancelled.is_set()
    pending.drop("CA2", SpokenReply())  # not that call's reply: kept
    assert pending.get("CA2", 1) == ("record", newer)
    pending.drop("CA2")
    assert pending.get("CA2", 1) is None and newer.cancelled.is_set()


class Told:
    """An observer that writes down what it is told."""

    def __init__(self):
        self.said = []

    def part(self, index, chunk):
        self.said.append(("part", index, chunk.text))

    def end(self, parts, cancelled, ending):
        self.said.append(("end", parts, cancelled) + ((ending,) if ending else ()))


def test_an_observer_hears_what_was_ready_before_it_came_then_each_change_once():
    reply = SpokenReply()
    for text in ("כן,", "אנחנו פתוחים.", "עד שש."):
        reply.add(text)
    reply.set_audio(1, MP3, 1.0)
    told = Told()
    reply.observe(told)  # what was ready before it watched is told at once
    reply.set_audio(0, MP3, 0.5)
    reply.close()
    reply.close()  # nothing new: not told again
    reply.fail(2, MP3, 0.5, "tts-error")  # the end is the same: three parts
    assert told.said == [("part", 1, "אנחנו פתוחים."), ("part", 0, "כן,"), ("end", 3, False),
                         ("part", 2, "עד שש.")]


def test_an_observer_hears_a_cut_and_a_cancel_and_no_part_after_the_cancel():
    reply, told = SpokenReply(), Told()
    for text in ("א.", "ב.", "ג."):
        reply.add(text)
    reply.observe(told)
    reply.fail(0, MP3, 0.5, "tts-error")  # the reply ends with its first chunk's fallback
    reply.cancel()
    reply.set_audio(0, MP3, 0.5)
    assert told.said == [("part", 0, "א."), ("end", 1, False), ("end", 1, True)]


def test_pending_replies_share_each_reply_put_and_cancel_all_on_close():
    shared = {}

    def share(call_sid, turn, tail):
        shared[(call_sid, turn, tail)] = Told()
        return shared[(call_sid, turn, tail)]
    pending, reply = PendingReplies(share=share), SpokenReply()
    reply.add("שלום.")
    pending.put("CA1", 2, "gather", reply)
    pending.cancel_all()
    assert pending.get("CA1", 2) is None and reply.cancelled.is_set()
    assert shared[("CA1", 2, "gather")].said == [("end", 1, True)]


def test_live_audio_is_read_as_it_comes_in_whole_frames_the_last_one_padded():
    live = LiveAudio()
    batches = []
    reader = threading.Thread(target=lambda: batches.extend(live.frames(30)))
    reader.start()
    live.add(b"\x01" * 100)  # not yet a whole frame: held back
    live.add(b"\x02" * 300)
    live.end()
    reader.join(30)
    frames = [f for batch in batches for f in batch]
    assert b"".join(frames) == b"\x01" * 100 + b"\x02" * 300 + b"\xff" * 80
    assert {len(f) for f in frames} == {160}


def test_live_audio_that_stalls_is_a_timeout_and_a_cancelled_reply_ends_it():
    stalled = LiveAudio()
    stalled.add(b"\x01" * 160)
    pieces = stalled.read(0.05)
    assert next(pieces) == b"\x01" * 160
    with pytest.raises(TimeoutError):
        next(pieces)
    reply, live = SpokenReply(), LiveAudio()
    reply.add("כן, בשמחה,")
    reply.set_live(0, live)
    assert reply.wait(0, 1).live is live  # ready at its first audio, before any MP3
    reply.cancel()  # a barge-in: the player reading it stops at once
    assert list(live.read(30)) == []
