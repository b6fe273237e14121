"""A real SMTP server on loopback (aiosmtpd) that keeps, defers or refuses what it is sent."""

from __future__ import annotations

import email
import email.policy

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
