"""google.cloud.texttospeech.v1.TextToSpeech on loopback gRPC, refusing what Google refuses."""

from __future__ import annotations

import struct
import threading

import grpc

from ivr import audio, google_voices

from .providers import FakeGoogleSpeech, serve_grpc

# streaming_synthesize's encodings (the SDK's StreamingAudioConfig: "Streaming supports PCM,
# ALAW, MULAW and OGG_OPUS. All other encodings return an error")
STREAMED = {"PCM", "ALAW", "MULAW", "OGG_OPUS"}
NATIVE_RATE = 24000  # a Chirp 3: HD voice's own rate: the audio when no rate is asked for
# the voices it knows: the he-IL ones Google lists, and two of another locale (Google was seen to
# stream the older Chirp-HD and Journey voices too; no locale of this line has them)
VOICES = set(google_voices.listed("he-IL")) | {"en-US-Standard-C", "en-US-Chirp3-HD-Kore"}


class FakeGoogleTTS(FakeGoogleSpeech):
    """SynthesizeSpeech and StreamingSynthesize for the real TextToSpeechClient.

    Refused with INVALID_ARGUMENT, as Google does: a voice it does not know, a voice of another
    language than `language_code`, pitch for a Chirp 3: HD voice; for a stream, a first request
    without `streaming_config` (or a later one with it), a voice that is not Chirp 3: HD, an
    encoding streaming does not make. A stream is the text's audio (MS_PER_CHAR a character, a
    beep) in PIECE_MS responses; `first_delay_sec` delays the first, `hold_first` and
    `hold_after` (pieces) hold the stream until `proceed()`, and `streams` records each one:
    its config, text, pieces sent, and whether it ended "done", "cancelled" or "refused";
    `wav_header` (a rate) starts a streamed MULAW with a WAV header (Google's documents do not say
    whether one comes).
    `mode` ("slow", "unavailable", "exhausted") is FakeGoogleSpeech's, reused.
    """

    SERVICE = "google.cloud.texttospeech.v1.TextToSpeech"
    MS_PER_CHAR = 60
    PIECE_MS = 100

    def __init__(self):  # FakeGoogleSpeech's state, this service's handlers
        from google.cloud.texttospeech_v1.types import cloud_tts as tts
        self.tts = tts
        self.mode, self.release = "ok", threading.Event()
        self.stalled = self.answered = 0
        self.refusal: tuple | None = None  # FakeGoogleSpeech.refuse: every call refused
        self.progress = threading.Condition()
        self.first_delay_sec, self.hold_first, self.hold_after = 0.0, False, None
        self.wav_header: int | None = None  # a streamed MULAW begins with a WAV header of this rate
        self.go = False
        self.requests: list = []  # SynthesizeSpeech requests
        self.streams: list[dict] = []
        handler = grpc.method_handlers_generic_handler(self.SERVICE, {
            "SynthesizeSpeech": grpc.unary_unary_rpc_method_handler(
                self.synthesize, request_deserializer=tts.SynthesizeSpeechRequest.deserialize,
                response_serializer=tts.SynthesizeSpeechResponse.serialize),
            "StreamingSynthesize": grpc.stream_stream_rpc_method_handler(
                self.streaming, request_deserializer=tts.StreamingSynthesizeRequest.deserialize,
                response_serializer=tts.StreamingSynthesizeResponse.serialize)})
        self.server, self.port = serve_grpc(handler)

    def client(self):
        from google.cloud.texttospeech_v1 import TextToSpeechClient
        from google.cloud.texttospeech_v1.services.text_to_speech.transports import (
            TextToSpeechGrpcTransport,
        )
        channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        return TextToSpeechClient(transport=TextToSpeechGrpcTransport(channel=channel))

    def proceed(self) -> None:
        """Let held streams go on."""
        with self.progress:
            self.go = True
            self.progress.notify_all()

    def wait(self, condition, timeout: float = 30.0) -> bool:
        """Whether `condition()` (on `streams`) holds within `timeout` s."""
        with self.progress:
            return self.progress.wait_for(condition, timeout)

    def _voice(self, voice, context) -> str:
        name, language = voice.name, voice.language_code
        if name not in VOICES:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"Voice '{name}' does not exist.")
        if not name.startswith(language + "-"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"Requested language code '{language}' doesn't match the voice "
                          f"'{name}'.")
        return name

    def synthesize(self, request, context):
        self.requests.append(request)
        name = self._voice(request.voice, context)
        config = request.audio_config
        if google_voices.streams(name) and config.pitch:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "This voice does not support pitch parameters at this time.")
        if config.audio_encoding.name != "MP3":
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this stand-in makes MP3 only")
        self._fault(context)
        pcm = audio.beep_pcm16(self.MS_PER_CHAR * len(request.input.text or "x"))
        return self.tts.SynthesizeSpeechResponse(audio_content=audio.pcm16_to_mp3(pcm))

    def _stream_config(self, first, context):
        if first is None or "streaming_config" not in first:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "The first request must contain streaming_config.")
        config = first.streaming_config
        name = self._voice(config.voice, context)
        if not google_voices.streams(name):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "Currently, only Chirp 3: HD voices are supported for streaming "
                          "synthesis.")
        encoding = config.streaming_audio_config.audio_encoding.name
        if "streaming_audio_config" in config and encoding not in STREAMED:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Unsupported audio encoding.")
        return config

    def _text(self, requests, context) -> str:
        texts = []
        for request in requests:
            if "streaming_config" in request:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              "Only the first request may contain streaming_config.")
            texts.append(request.input.text)
        return "".join(texts)

    def streaming(self, requests, context):
        stream = {"config": None, "text": "", "pieces": 0, "ended": ""}
        with self.progress:
            self.streams.append(stream)
        context.add_callback(lambda: self._ended(stream, "cancelled"))
        stream["ended"] = "refused"  # until the requests are known to be acceptable
        config = self._stream_config(next(requests, None), context)
        text = self._text(requests, context)
        with self.progress:  # accepted: its synthesis starts
            stream.update(config=config, text=text, ended="")
            self.progress.notify_all()
        self._fault(context)
        for piece in self._pieces(stream["config"].streaming_audio_config, stream["text"]):
            if not self._may_send(stream):
                return
            with self.progress:
                stream["pieces"] += 1
                self.progress.notify_all()
            yield self.tts.StreamingSynthesizeResponse(audio_content=piece)
        self._ended(stream, "done")

    def _may_send(self, stream) -> bool:
        """Wait as configured before the next piece; False if the call ended meanwhile."""
        sent = stream["pieces"]
        with self.progress:
            if sent == 0 and self.first_delay_sec:
                self.progress.wait_for(lambda: stream["ended"], self.first_delay_sec)
            held = (sent == 0 and self.hold_first) or sent == self.hold_after
            if held:
                self.progress.wait_for(lambda: self.go or stream["ended"], 60)
            return not stream["ended"]

    def _ended(self, stream, how: str) -> None:
        with self.progress:
            stream["ended"] = stream["ended"] or how
            self.progress.notify_all()

    def _pieces(self, config, text: str) -> list[bytes]:
        """The text's audio in the requested encoding and rate, cut into PIECE_MS pieces."""
        rate = config.sample_rate_hertz or NATIVE_RATE
        pcm = audio.resample(audio.beep_pcm16(self.MS_PER_CHAR * len(text)), audio.RATE, rate)
        encoding = config.audio_encoding.name if "audio_encoding" in config else "PCM"
        if encoding == "MULAW":
            data, width = audio.pcm16_to_ulaw(pcm), 1
        elif encoding == "PCM":
            data, width = pcm, 2
        else:
            raise NotImplementedError(f"this stand-in does not make {encoding}")
        size = rate * width * self.PIECE_MS // 1000
        pieces = [data[i:i + size] for i in range(0, len(data), size)]
        if self.wav_header and encoding == "MULAW" and pieces:
            pieces[0] = mulaw_wav_header(self.wav_header) + pieces[0]
        return pieces


def mulaw_wav_header(rate: int) -> bytes:
    """A streamed μ-law WAV's header (the sizes unknown: 0xFFFFFFFF)."""
    fmt = struct.pack("<HHIIHH", 7, 1, rate, rate, 1, 8)
    return (b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
            + fmt + b"data" + struct.pack("<I", 0xFFFFFFFF))
