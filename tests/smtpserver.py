"""A real SMTP server on loopback (aiosmtpd) that keeps, defers or refuses what it is sent, and
a tarpit that answers a byte at a time."""

from __future__ import annotations

import email
import email.policy
import select
import socket
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from .livehelpers import free_port


class Inbox:
    """aiosmtpd handler: keeps each message accepted; answers DATA with `failures` first (all
    of them for ever with `always`)."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list = []
        self.failures: list[str] = []
        self.always = ""
        self.data_calls = 0

    async def handle_DATA(self, server, session, envelope):
        self.data_calls += 1
        if self.always or self.failures:
            return self.always or self.failures.pop(0)
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.content,
                                                      policy=email.policy.default))
        return "250 2.0.0 accepted"


class SMTPServer:
    """A real SMTP server on a free loopback port; `logins` accepts these user/password pairs."""

    def __init__(self, logins: dict[str, str] | None = None):
        self.inbox, self.port, self.logins = Inbox(), free_port(), logins or {}
        options = {"authenticator": self.authenticate, "auth_require_tls": False} \
            if logins else {}
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **options)
        self.controller.start()

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and \
            self.logins.get(auth_data.login.decode()) == auth_data.password.decode()
        return AuthResult(success=ok)

    def url(self, userinfo: str = "") -> str:
        return f"smtp://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}"

    def stop(self):
        self.controller.stop()


class Tarpit:
    """An SMTP server that never finishes its greeting: each connection gets one byte of
    "220-please wait" lines every `interval` seconds (the final "220 " line never comes). Bounded:
    `stop()` closes every connection and the listener. Counts connections open now, the most
    open at once, and all ever accepted."""

    GREETING = b"220-please wait\r\n"

    def __init__(self, interval: float = 5.0):
        self.interval, self.port = interval, free_port()
        self.lock, self.stopping = threading.Lock(), threading.Event()
        self.open = self.most_open = self.accepted = 0
        self.conns: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _peer = self.listener.accept()
            except OSError:
                return  # the listener is closed
            with self.lock:
                self.accepted += 1
                self.open += 1
                self.most_open = max(self.most_open, self.open)
                self.conns.append(conn)
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        sent = 0
        try:
            while not self.stopping.is_set():
                readable, _w, _x = select.select([conn], [], [], self.interval)
                if readable and not conn.recv(1024):
                    break  # the client hung up (or stop() shut it down)
                if not readable:
                    conn.sendall(self.GREETING[sent % len(self.GREETING):][:1])
                    sent += 1
        except OSError:
            pass  # the client hung up
        finally:
            conn.close()
            with self.lock:
                self.open -= 1

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()
        with self.lock:
            conns = list(self.conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed
