"""Telephone audio: μ-law⇄PCM16, RMS, resampling, beep, MP3 encoding; ffmpeg and espeak-ng run."""

from __future__ import annotations

import io
import math
import os
import select
import shutil
import struct
import subprocess
import tempfile
import threading
import warnings
import wave
from collections.abc import Iterator

import lameenc

from . import threads

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # C speed; the audioop-lts package provides it on Python >= 3.13

FFMPEG = "ffmpeg"  # the programs this module runs, looked up on PATH (ivr.programs checks them)
ESPEAK_NG = "espeak-ng"
RATE = 8000
FRAME_BYTES = 160  # 20 ms of 8 kHz μ-law
FRAME_SEC = 0.02
ULAW_SILENCE = b"\xff"


def ulaw_to_pcm16(ulaw: bytes) -> bytes:
    return audioop.ulaw2lin(ulaw, 2)


def pcm16_to_ulaw(pcm: bytes) -> bytes:
    return audioop.lin2ulaw(pcm, 2)


def rms(pcm: bytes) -> int:
    """Root mean square level of 16-bit mono PCM."""
    return audioop.rms(pcm, 2)


def resample(pcm: bytes, src_rate: int, dst_rate: int = RATE) -> bytes:
    """Resample 16-bit mono PCM."""
    if src_rate == dst_rate:
        return pcm
    return audioop.ratecv(pcm, 2, 1, src_rate, dst_rate, None)[0]


def silence_ulaw(frames: int) -> bytes:
    return ULAW_SILENCE * (FRAME_BYTES * frames)


def beep_pcm16(ms: int = 300, hz: float = 880.0, level: int = 8000) -> bytes:
    """A generated sine beep (8 kHz PCM16): the sound of last resort, no file needed."""
    count = RATE * ms // 1000
    samples = (int(level * math.sin(2 * math.pi * hz * i / RATE)) for i in range(count))
    return struct.pack(f"<{count}h", *samples)


def frames_of(ulaw: bytes) -> list[bytes]:
    """Split μ-law audio into 160-byte frames, padding the last one with silence."""
    frames = [ulaw[i:i + FRAME_BYTES] for i in range(0, len(ulaw), FRAME_BYTES)]
    if frames and len(frames[-1]) < FRAME_BYTES:
        frames[-1] = frames[-1].ljust(FRAME_BYTES, ULAW_SILENCE)
    return frames


def wav_bytes(pcm: bytes, rate: int = RATE, channels: int = 1) -> bytes:
    """16-bit PCM as a WAV file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return buffer.getvalue()


def decode_to_pcm16(data: bytes, rate: int = RATE) -> bytes:
    """Any audio file (WAV natively, MP3 and others through ffmpeg) → mono PCM16 at `rate`."""
    if data[:4] == b"RIFF":
        try:
            with wave.open(io.BytesIO(data)) as src:
                pcm = src.readframes(src.getnframes())
                width, channels = src.getsampwidth(), src.getnchannels()
                src_rate = src.getframerate()
            if width != 2:
                pcm = audioop.lin2lin(pcm, width, 2)
            if channels == 2:
                pcm = audioop.tomono(pcm, 2, 0.5, 0.5)
            return resample(pcm, src_rate, rate)
        except (wave.Error, EOFError):
            pass
    return ffmpeg_decode(data, rate)


def ffmpeg_decode(data: bytes, rate: int = RATE) -> bytes:
    """One ffmpeg process, stdin → mono PCM16 at `rate` on stdout (no probe, no temp file:
    on the stream path this is between a chunk's MP3 and its first frame)."""
    try:
        result = subprocess.run(
            [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", "pipe:0",
             "-f", "s16le", "-acodec", "pcm_s16le", "-ac", "1", "-ar", str(rate), "pipe:1"],
            input=data, capture_output=True, timeout=30, check=False)
    except FileNotFoundError:
        raise RuntimeError("ffmpeg is not installed (apt-get install ffmpeg): it decodes MP3 "
                           "for REPLY_MODE=stream") from None
    if result.returncode != 0:
        raise ValueError(f"ffmpeg could not decode {len(data)} bytes: "
                         f"{result.stderr.decode(errors='replace').strip()[-200:]}")
    return result.stdout


def mp3_stream_to_ulaw(chunks: Iterator[bytes], wake_sec: float = 0.1) -> Iterator[bytes]:
    """8 kHz μ-law of an MP3 that arrives in `chunks`, decoded as they come (one
    ffmpeg process, fed from a thread): the first audio after the first few frames, not after
    the whole file. An empty piece every `wake_sec` meanwhile, so the reader may stop; closing
    the iterator early stops the decoder and the feeding. A chunk source's error is raised."""
    try:
        decoder = subprocess.Popen(
            [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-fflags", "nobuffer",
             "-probesize", "32", "-analyzeduration", "0", "-f", "mp3", "-i", "pipe:0",
             "-f", "mulaw", "-acodec", "pcm_mulaw", "-ac", "1", "-ar", str(RATE),
             "-flush_packets", "1",
             "pipe:1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise RuntimeError("ffmpeg is not installed (apt-get install ffmpeg): it decodes MP3 "
                           "for REPLY_MODE=stream") from None
    failed: list[BaseException] = []
    stop = threading.Event()

    def feed() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    break
                decoder.stdin.write(chunk)
                decoder.stdin.flush()
        except BrokenPipeError:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the reader
            failed.append(exc)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
            try:
                decoder.stdin.close()
            except OSError:
                pass
    feeder = threads.start("mp3-feed", feed)
    out = decoder.stdout.fileno()
    try:
        while True:
            ready, _, _ = select.select([out], [], [], wake_sec)
            if not ready:
                yield b""
                continue
            piece = os.read(out, 4096)
            if not piece:
                break
            yield piece
        feeder.join()
        if failed:
            raise failed[0]
        if decoder.wait() != 0:
            raise ValueError("ffmpeg could not decode the stream: "
                             f"{decoder.stderr.read().decode(errors='replace').strip()[-200:]}")
    finally:
        stop.set()
        if decoder.poll() is None:
            decoder.kill()
            decoder.wait()
        decoder.stdout.close()
        decoder.stderr.close()


def pcm16_to_mp3(pcm: bytes, rate: int = RATE, kbps: int = 32) -> bytes:
    """Encode mono PCM16 as a constant-bitrate MP3: with ffmpeg when it is installed (its LAME
    tag tells players to skip the encoder's delay and padding: ~0.15 s of silence at 8 kHz,
    before and after each reply), else in this process (lameenc: no program needed)."""
    if shutil.which(FFMPEG):
        return ffmpeg_encode_mp3(pcm, rate, kbps)
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(kbps)
    encoder.set_in_sample_rate(rate)
    encoder.set_channels(1)
    encoder.set_quality(2)  # LAME's best; still far faster than starting a program
    return bytes(encoder.encode(pcm)) + bytes(encoder.flush())


def ffmpeg_encode_mp3(pcm: bytes, rate: int, kbps: int) -> bytes:
    """One ffmpeg process, PCM16 on stdin → MP3 in a temporary file: the file, not a pipe, so
    ffmpeg can write the LAME tag (encoder delay and padding) at its start once it is done."""
    with tempfile.TemporaryDirectory(prefix="ivr-mp3-") as folder:
        out = os.path.join(folder, "out.mp3")
        result = subprocess.run(
            [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "s16le",
             "-ar", str(rate), "-ac", "1", "-i", "pipe:0", "-b:a", f"{kbps}k", out],
            input=pcm, capture_output=True, timeout=30, check=False)
        if result.returncode != 0:
            raise ValueError(f"ffmpeg could not encode {len(pcm)} bytes: "
                             f"{result.stderr.decode(errors='replace').strip()[-200:]}")
        with open(out, "rb") as mp3:
            return mp3.read()


def duration_sec(pcm: bytes, rate: int = RATE) -> float:
    return len(pcm) / (2 * rate)


MPEG_BITRATES_KBPS = {  # (MPEG-1?, bitrate index) of Layer III
    True: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    False: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}
MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def mp3_duration_sec(data: bytes) -> float:
    """Seconds of an MP3 (Layer III) counted from its frame headers: no decoder, no process.
    Within a few frames of the decoded length (the encoder's delay and padding are counted)."""
    pos = 0
    if data[:3] == b"ID3" and len(data) >= 10:  # skip an ID3v2 tag (its size is syncsafe)
        pos = 10 + ((data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7
                    | data[9] & 0x7F)
    seconds, frames = 0.0, 0
    while pos + 4 <= len(data):
        b1, b2 = data[pos + 1], data[pos + 2]
        version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
        bitrate_index, rate_index = b2 >> 4, (b2 >> 2) & 3
        if (data[pos] != 0xFF or (b1 & 0xE0) != 0xE0 or version == 1 or layer != 1
                or bitrate_index in (0, 15) or rate_index == 3):
            pos += 1  # not a frame header here: resynchronise
            continue
        mpeg1 = version == 3
        rate = MPEG_RATES[version][rate_index]
        bitrate = MPEG_BITRATES_KBPS[mpeg1][bitrate_index] * 1000
        samples = 1152 if mpeg1 else 576
        size = samples // 8 * bitrate // rate + ((b2 >> 1) & 1)
        frame = data[pos + 4:pos + size]
        if frames or not (b"Xing" in frame or b"Info" in frame):  # not the encoder's tag frame
            seconds += samples / rate
        frames += 1
        pos += size
    return seconds


def stereo(left: bytes, right: bytes) -> bytes:
    """Two mono PCM16 tracks (padded to the same length) → interleaved stereo PCM16."""
    size = max(len(left), len(right))
    left, right = left.ljust(size, b"\0"), right.ljust(size, b"\0")
    return audioop.add(audioop.tostereo(left, 2, 1, 0), audioop.tostereo(right, 2, 0, 1), 2)


def espeak_pcm16(text: str, voice: str = "he", speed: int = 150, rate: int = RATE) -> bytes:
    """Speak text with espeak-ng (Hebrew voice by default) → mono PCM16 at `rate`.

    The text goes in on standard input (`--stdin`, read whole, UTF-8), never as an argument,
    so a reply such as `-f/etc/passwd` or `-w file` is spoken, not parsed as an option.
    """
    command = [ESPEAK_NG, "-b", "1", "-v", voice, "-s", str(speed), "--stdout", "--stdin"]
    try:
        result = subprocess.run(command, input=text.encode("utf-8"), capture_output=True,
                                timeout=30, check=True)
    except FileNotFoundError:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)") from None
    return decode_to_pcm16(result.stdout, rate)
