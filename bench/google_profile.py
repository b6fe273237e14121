"""Google Speech-to-Text's StreamingRecognize on loopback TLS with the latency profile's timings,
so that `python -m bench.latency --asr google` hears the caller through the line's real
google-cloud-speech client, live.

- interim results while the audio streams in: the words of the question so far (the profile's
  question, with its own reference number), word k of n once k/n of the sentence's voiced
  frames have arrived, LAG_SEC after they did;
- the final result, the whole question, ASR_SEC (the profile's 0.35 s) after the client
  half-closes its side.
Google's documents do not say how late interim results come: LAG_SEC (0.3 s) is an assumption,
and so is punctuation in them (an interim carries the final's words as they are, "?" and "."
included). The stand-in is told how many voiced frames each sentence the caller says has, in
order, so that the last word comes with the last voiced frame.

The line reaches it as it reaches Google: over TLS (a throwaway self-signed certificate, which
the line's gRPC trusts through GRPC_DEFAULT_SSL_ROOTS_FILE_PATH) at GOOGLE_SPEECH_ENDPOINT,
signed with a throwaway service-account key in GOOGLE_APPLICATION_CREDENTIALS. The client signs
its own JWT with that key (google-auth's self-signed JWT); no token endpoint is asked, so the
key's token_uri names a closed port.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import math
import tempfile
import threading
import time
from pathlib import Path

import grpc

from ivr import audio
from tests.providers import FakeGoogleSpeech

from .latency_profile import ASR_SEC, LatencyProfile, question

LAG_SEC = 0.3  # a word's interim result after the audio that holds it (assumed)
CLOSED_PORT = "http://127.0.0.1:9/token"  # the discard port: nothing answers there


def self_signed_certificate() -> tuple[bytes, bytes]:
    """(private key, certificate) in PEM for 127.0.0.1 and localhost, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            cert.public_bytes(serialization.Encoding.PEM))


def service_account_json() -> str:
    """A throwaway service-account key file's JSON (a new RSA key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return json.dumps({"type": "service_account", "project_id": "bench", "private_key_id": "k1",
                       "private_key": pem, "client_email": "line@bench.iam.gserviceaccount.com",
                       "client_id": "1", "token_uri": CLOSED_PORT})


class Hearing:
    """One stream: when the audio that holds each word arrived, and how the stream ended."""

    def __init__(self, words: list[str], voiced_frames: int, vad_rms: int):
        self.words, self.vad_rms = words, vad_rms
        frames = max(1, voiced_frames)  # the voiced frames heard by the end of word k:
        self.holds = [math.ceil(frames * (k + 1) / len(words)) for k in range(len(words))]
        self.arrived: list[float] = []  # when the last audio of word k arrived
        self.voiced = 0
        self.pending = b""  # μ-law short of a whole frame
        self.closed_at: float | None = None  # the client half-closed: no more audio
        self.gone = False  # the client cancelled, or the call is over
        self.cond = threading.Condition()

    def hear(self, ulaw: bytes) -> None:
        now = time.monotonic()
        with self.cond:
            self.pending += ulaw
            whole = len(self.pending) - len(self.pending) % audio.FRAME_BYTES
            for frame in audio.frames_of(self.pending[:whole]):
                self.voiced += audio.rms(audio.ulaw_to_pcm16(frame)) > self.vad_rms
            self.pending = self.pending[whole:]
            while len(self.arrived) < len(self.words) and \
                    self.voiced >= self.holds[len(self.arrived)]:
                self.arrived.append(now)
            self.cond.notify_all()

    def end(self, gone: bool) -> None:
        with self.cond:
            if gone:
                self.gone = True
            elif self.closed_at is None:
                self.closed_at = time.monotonic()
            self.cond.notify_all()

    def next_result(self, shown: int) -> tuple[int, bool] | None:
        """Wait for the next result due: (how many words it shows, whether it is the final,
        which shows them all); None once the stream is gone."""
        with self.cond:
            while not self.gone:
                final = None if self.closed_at is None else self.closed_at + ASR_SEC
                word = self.arrived[shown] + LAG_SEC if shown < len(self.arrived) else None
                due = min(t for t in (word, final, time.monotonic() + 1.0) if t is not None)
                if due <= time.monotonic():
                    return (shown + 1, False) if due == word else (len(self.words), True)
                self.cond.wait(due - time.monotonic())
        return None


class GoogleSpeechProfile(FakeGoogleSpeech):
    """The stand-in on loopback TLS; `line_env()` is what the line needs to reach it.
    `voiced`: how many voiced frames (over `vad_rms`) each sentence the caller says has, in
    order (the n-th stream the client half-closes is the n-th sentence); `begin_call()`
    before each call; `opened`, `finished` (the client half-closed: an utterance heard) and
    `signed` (came with a bearer token) count the call's streams."""

    def __init__(self, profile: LatencyProfile, voiced: list[int], vad_rms: int):
        self.profile, self.voiced, self.vad_rms = profile, voiced, vad_rms
        self.opened = self.finished = self.signed = 0
        self.tmp = tempfile.TemporaryDirectory()
        self.roots = Path(self.tmp.name) / "roots.pem"
        self.key_file = Path(self.tmp.name) / "service-account.json"
        key, cert = self_signed_certificate()
        self.roots.write_bytes(cert)
        self.key_file.write_text(service_account_json())
        super().__init__(grpc.ssl_server_credentials([(key, cert)]))

    def line_env(self) -> dict[str, str]:
        return {"ASR_ENGINE": "google", "GOOGLE_SPEECH_ENDPOINT": f"127.0.0.1:{self.port}",
                "GOOGLE_APPLICATION_CREDENTIALS": str(self.key_file),
                "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": str(self.roots)}

    def begin_call(self) -> None:
        with self.progress:
            self.opened = self.finished = self.signed = 0

    def streams(self) -> dict[str, int]:
        with self.progress:
            return {"opened": self.opened, "finished": self.finished, "signed": self.signed}

    def stop(self) -> None:
        super().stop()
        self.tmp.cleanup()

    def streaming(self, requests, context):
        number = self.profile.new_number()
        words = question(number).split()
        bearer = dict(context.invocation_metadata()).get("authorization", "")
        with self.progress:
            self.opened += 1
            self.signed += bearer.startswith("Bearer ")
            voiced = self.voiced[self.finished % len(self.voiced)]
        hearing = Hearing(words, voiced, self.vad_rms)
        context.add_callback(lambda: hearing.end(gone=True))
        threading.Thread(target=self.read, args=(requests, hearing), daemon=True).start()
        shown, final = 0, False
        while not final and (result := hearing.next_result(shown)) is not None:
            shown, final = result
            if shown == len(words):
                self.profile.hear(number)  # the number is the last word
            yield self._result(" ".join(words[:shown]), final=final)

    def read(self, requests, hearing: Hearing) -> None:
        """The stream's audio as it arrives (in a thread of its own: results come meanwhile)."""
        received = 0
        try:
            for item in requests:
                if item.streaming_config.config.language_code:
                    self.configs.append(item.streaming_config)
                received += len(item.audio_content)
                hearing.hear(item.audio_content)
        except Exception:  # grpc.RpcError: the client cancelled
            hearing.end(gone=True)
            return
        with self.progress:
            self.finished += 1
            self.audio_bytes.append(received)
        hearing.end(gone=False)
