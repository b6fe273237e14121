"""A loopback stand-in for pre-signed S3, where the emulator's recordings can redirect to."""

from __future__ import annotations

import calendar
import hashlib
import hmac
import secrets
import threading
import time
from urllib.parse import urlencode

from flask import Flask, Response, request
from werkzeug.serving import make_server

from .clock import SERVE_POLL_SEC

EXPIRES_SEC = 300
BUCKET = "emulator-recordings"
ONE_AUTH = ("Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be specified")


def s3_error(status: int, code: str, message: str) -> Response:
    """S3's XML error."""
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>{secrets.token_hex(8).upper()}</RequestId>"
            "</Error>")
    return Response(body, status=status, mimetype="application/xml")


class Storage:
    """Objects served only at URLs it signed (SigV4's query parameters, its own secret), as S3
    serves a pre-signed URL: an Authorization header as well is refused (400), an unsigned,
    altered or expired URL too (403). Every request is kept in `requests`."""

    def __init__(self, host: str = "127.0.0.1"):
        self.secret = secrets.token_bytes(32)
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        app = Flask("emulator-storage")
        app.add_url_rule(f"/{BUCKET}/<path:key>", "object", self.get_object)
        self.server = make_server(host, 0, app, threaded=True)
        self.url = f"http://{host}:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True,
                         name="emulator-storage", kwargs={"poll_interval": SERVE_POLL_SEC}).start()

    def stop(self) -> None:
        self.server.shutdown()

    def put(self, key: str, data: bytes, content_type: str) -> None:
        with self.lock:
            self.objects[key] = (data, content_type)

    def signature(self, path: str, date: str, expires: str) -> str:
        return hmac.new(self.secret, f"{path}\n{date}\n{expires}".encode(),
                        hashlib.sha256).hexdigest()

    def presigned_url(self, key: str, expires: int = EXPIRES_SEC) -> str:
        path, date = f"/{BUCKET}/{key}", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        query = {"X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                 "X-Amz-Credential": f"EMULATOR/{date[:8]}/us-east-1/s3/aws4_request",
                 "X-Amz-Date": date, "X-Amz-Expires": str(expires),
                 "X-Amz-SignedHeaders": "host",
                 "X-Amz-Signature": self.signature(path, date, str(expires))}
        return f"{self.url}{path}?{urlencode(query)}"

    def unsigned_url(self, key: str) -> str:
        return f"{self.url}/{BUCKET}/{key}"

    def get_object(self, key: str) -> Response:
        args = request.args
        self.requests.append({"path": request.path, "signed": "X-Amz-Signature" in args,
                              "authorization": "Authorization" in request.headers})
        if "Authorization" in request.headers and "X-Amz-Signature" in args:
            return s3_error(400, "InvalidArgument", ONE_AUTH)
        date, expires = args.get("X-Amz-Date", ""), args.get("X-Amz-Expires", "")
        good = self.signature(request.path, date, expires)
        if not hmac.compare_digest(good, args.get("X-Amz-Signature", "")):
            return s3_error(403, "AccessDenied", "Access Denied")
        signed_at = calendar.timegm(time.strptime(date, "%Y%m%dT%H%M%SZ"))
        if time.time() > signed_at + int(expires):
            return s3_error(403, "AccessDenied", "Request has expired")
        with self.lock:
            found = self.objects.get(key)
        if found is None:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        return Response(found[0], mimetype=found[1])
