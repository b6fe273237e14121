"""Audio helpers: μ-law round trip, RMS, framing; espeak-ng speaks replies, never obeys them."""

from __future__ import annotations

import subprocess

import pytest

from ivr import audio


def spoken_from_file(tmp_path, text: str) -> float:
    """Seconds espeak-ng takes to speak `text` read from a file we wrote: the reference length."""
    source = tmp_path / "reference.txt"
    source.write_text(text, encoding="utf-8")
    wav = subprocess.run(["espeak-ng", "-b", "1", "-v", "he", "-s", "150", "--stdout", "-f",
                          str(source)], capture_output=True, check=True, timeout=30).stdout
    source.unlink()
    return audio.duration_sec(audio.decode_to_pcm16(wav))


@pytest.mark.parametrize("reply", ["-f/etc/passwd", "--help", "-f /etc/passwd", "--version"])
def test_a_reply_that_looks_like_an_option_is_spoken_not_obeyed(tmp_path, reply):
    heard = audio.duration_sec(audio.espeak_pcm16(reply))
    assert heard == pytest.approx(spoken_from_file(tmp_path, reply), rel=0.02)
    assert 0.2 < heard < 15  # /etc/passwd read aloud lasts minutes


def test_a_reply_asking_espeak_to_write_a_file_writes_nothing(tmp_path):
    target = tmp_path / "x.wav"
    reply = f"-w {target}"
    heard = audio.duration_sec(audio.espeak_pcm16(reply))
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    assert heard == pytest.approx(spoken_from_file(tmp_path, reply), rel=0.02)


def test_every_line_of_a_multi_line_reply_is_spoken_as_text(tmp_path):
    target = tmp_path / "y.wav"
    reply = f"שלום\n-w {target}\n--help\nתודה"
    heard = audio.duration_sec(audio.espeak_pcm16(reply))
    assert not target.exists()
    assert heard == pytest.approx(spoken_from_file(tmp_path, reply), rel=0.02)
    assert heard > audio.duration_sec(audio.espeak_pcm16("שלום")) * 2


def test_ulaw_round_trip_keeps_the_signal():
    pcm = audio.beep_pcm16(100)
    ulaw = audio.pcm16_to_ulaw(pcm)
    assert len(ulaw) == len(pcm) // 2
    back = audio.ulaw_to_pcm16(ulaw)
    assert len(back) == len(pcm)
    assert audio.rms(back) == pytest.approx(audio.rms(pcm), rel=0.05)


def test_rms_of_silence_and_of_a_beep():
    assert audio.rms(b"\0" * 320) == 0
    assert audio.rms(audio.ulaw_to_pcm16(audio.silence_ulaw(1))) < 10
    assert audio.rms(audio.beep_pcm16(100, level=8000)) == pytest.approx(8000 / 2 ** 0.5, rel=0.02)


def test_frames_of_pads_the_last_frame_with_silence():
    frames = audio.frames_of(b"\x01" * (audio.FRAME_BYTES + 10))
    assert [len(f) for f in frames] == [audio.FRAME_BYTES, audio.FRAME_BYTES]
    assert frames[1] == b"\x01" * 10 + audio.ULAW_SILENCE * (audio.FRAME_BYTES - 10)
    assert audio.frames_of(b"") == []
    assert audio.frames_of(audio.silence_ulaw(2)) == [audio.silence_ulaw(1)] * 2


@pytest.mark.parametrize("ms", [300, 1500, 7000])
def test_mp3_length_from_frame_headers_is_never_short_and_close(ms):
    mp3 = audio.pcm16_to_mp3(audio.beep_pcm16(ms))
    decoded = audio.duration_sec(audio.decode_to_pcm16(mp3))
    counted = audio.mp3_duration_sec(mp3)
    assert decoded <= counted <= decoded + 0.25  # the encoder's delay and padding at most


def test_mp3_length_of_junk_is_zero():
    assert audio.mp3_duration_sec(b"") == 0.0
    assert audio.mp3_duration_sec(b"\xff" * 500) == 0.0
    assert audio.mp3_duration_sec(b"ID3\x03\x00\x00\x00\x00\x00\x10" + b"x" * 40) == 0.0
