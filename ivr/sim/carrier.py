"""The emulated carrier: Twilio's REST API on loopback, and place_call() to ring the line."""

from __future__ import annotations

import threading
import time

from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

from .. import audio
from ..config import LOCAL_ACCOUNT_SID, ROOT, local_auth_token
from .alerts import AlertBook
from .call import Account
from .clock import SERVE_POLL_SEC
from .interpreter import CallRun
from .messages import Outbox, invalid, resource
from .result import ERROR_TEXT, CallResult
from .script import DIAL_OUTCOMES, CallerScript
from .storage import Storage

FAULTS = {"ws_refuse", "ws_no_media", "stream_hangs", "stream_stop_after", "slow_rest",
          "play_fail", "recording_404s", "dial", "ws_unsigned", "stale_action",
          "recording_regional", "recording_redirect", "gather_lists"}
FAULT_VALUES = {"dial": (True, *DIAL_OUTCOMES), "gather_lists": ("iw-IL", "he-IL"),
                "recording_redirect": (True, "storage", "unsigned")}
MAX_INLINE_TWIML = 4000
API = "/2010-04-01/Accounts/<account>"
TWILIO_API = "https://api.twilio.com"  # the request_url of a REST call's alert, as Twilio's


def twilio_error(status: int, code: int, message: str = "") -> Response:
    body = {"code": code, "message": message or ERROR_TEXT.get(code, ""), "status": status,
            "more_info": f"https://www.twilio.com/docs/errors/{code}"}
    response = jsonify(body)
    response.status_code = status
    return response


class Carrier:
    """A local Twilio: rings the app, interprets its TwiML, serves the REST calls it makes."""

    def __init__(self, server_url: str, account_sid: str = LOCAL_ACCOUNT_SID,
                 auth_token: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 status_callback: str = "/webhook/call_status", offer_subprotocol: bool = False,
                 speed: float = 1.0, gather_hebrew: str = "iw-IL",
                 shared_key: tuple[str, str, str] | None = None):
        """`gather_hebrew`: the Hebrew tag the Gather table lists (the other one is 13331);
        `shared_key`: (key SID, secret, HMAC_SHA1|HMAC_SHA256) to sign webhooks and upgrades
        as a Webhooks Rule would (X-Twilio-Webhooks-Signature-Settings), instead of the token."""
        self.server_url = server_url.rstrip("/")
        self.account_sid = account_sid
        self.auth_token = auth_token or local_auth_token(ROOT / "var")
        self.status_callback = (self.server_url + status_callback
                                if status_callback.startswith("/") else status_callback)
        self.offer_subprotocol, self.speed = offer_subprotocol, speed
        self.gather_hebrew, self.shared_key = gather_hebrew, shared_key
        self.alerts = AlertBook(account_sid)  # what GET /v1/Alerts (Monitor) lists
        self._storage: Storage | None = None
        self.calls: dict[str, CallRun] = {}
        self.recordings: dict[str, bytes] = {}  # served as well as those its calls made
        self.outbox = Outbox()
        self.messages = self.outbox.messages  # accepted: sid, to, from, body, at
        self.message_attempts = self.outbox.attempts  # every POST, with its status and code
        self.app = self.build_app()
        self.server = make_server(host, port, self.app, threaded=True)
        self.url = f"http://{host}:{self.server.server_port}"
        self.thread: threading.Thread | None = None

    def as_account(self) -> Account:
        """The carrier as a call placed now knows it."""
        return Account(self.account_sid, self.auth_token, self.url, self.server_url,
                       self.status_callback, self.offer_subprotocol, self.alerts,
                       self.gather_hebrew, self.shared_key)

    @property
    def storage(self) -> Storage:
        """The pre-signed storage stand-in recordings redirect to (started on first use)."""
        if self._storage is None:
            self._storage = Storage()
        return self._storage

    def start(self) -> Carrier:
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name="carrier-rest",
                                       kwargs={"poll_interval": SERVE_POLL_SEC})
        self.thread.start()
        return self

    def stop(self) -> None:
        for run in list(self.calls.values()):
            run.hangup("carrier (shutdown)")
        self.server.shutdown()
        if self._storage is not None:
            self._storage.stop()

    def __enter__(self) -> Carrier:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()

    def place_call(self, script: str | dict | CallerScript = "three_turns",
                   speed: float | None = None, **faults) -> CallResult:
        """Ring the app with a caller script; return when the call has ended."""
        unknown = set(faults) - FAULTS
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}; known: {sorted(FAULTS)}")
        for name, allowed in FAULT_VALUES.items():
            if faults.get(name) not in (None, *allowed):
                raise ValueError(f"fault {name}={faults[name]}: expected one of {allowed}")
        if not isinstance(script, CallerScript):
            script = CallerScript.load(script)
        run = CallRun(self.as_account(), script, speed or self.speed, faults)
        self.calls[run.call_sid] = run
        return run.run()

    # ---- the REST API ----------------------------------------------------------------------
    def authorized(self, account: str) -> bool:
        auth = request.authorization
        return bool(auth and account == self.account_sid and auth.username == self.account_sid
                    and auth.password == self.auth_token)

    def log_rest(self, run: CallRun | None, status: int, **detail) -> None:
        if run is not None:
            run.result.requests.append({"t": round(run.clock.now(), 3), "direction": "in",
                                        "what": "rest", "method": request.method,
                                        "url": request.path, "params": request.form.to_dict(),
                                        "status": status, **detail})

    def update_call(self, account: str, call: str) -> Response:
        run = self.calls.get(call)
        if run is not None and run.faults.get("slow_rest"):
            time.sleep(float(run.faults["slow_rest"]))
        if not self.authorized(account):
            self.log_rest(run, 401)
            return twilio_error(401, 20003)
        if run is None:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        twiml, url = request.form.get("Twiml"), request.form.get("Url")
        if run.ended.is_set() or run.status != "in-progress":
            self.log_rest(run, 400, code=21220)
            run.error(21220, "REST update of a call that is not in progress",
                      TWILIO_API + request.path)
            return twilio_error(400, 21220)
        if request.form.get("Status") == "completed":
            self.log_rest(run, 200)
            run.hangup("carrier (REST Status=completed)")
        elif twiml and len(twiml) > MAX_INLINE_TWIML:
            self.log_rest(run, 400, code=32018)
            run.error(32018, f"inline TwiML of {len(twiml)} characters", TWILIO_API + request.path)
            return twilio_error(400, 32018)
        elif twiml or url:
            self.log_rest(run, 200)
            run.update(twiml=twiml, url=url, method=request.form.get("Method", "POST"))
        else:
            self.log_rest(run, 400, code=20001)
            return twilio_error(400, 20001, "Twiml, Url or Status is required")
        return jsonify({"sid": call, "account_sid": account, "status": run.status,
                        "direction": "inbound", "from": run.script.from_number,
                        "to": run.script.to_number, "api_version": "2010-04-01",
                        "uri": f"/2010-04-01/Accounts/{account}/Calls/{call}.json"})

    def recording_media(self, account: str, name: str) -> Response:
        sid, _, ext = name.partition(".")
        if not self.authorized(account):
            return twilio_error(401, 20003)
        run = next((r for r in list(self.calls.values()) if sid in r.recordings), None)
        pcm = self.recordings.get(sid) if run is None else run.recordings[sid]
        if pcm is None:
            return twilio_error(404, 20404, "recording not found")
        if run is not None and run.faults.get("recording_404s", 0) > 0:
            run.faults["recording_404s"] -= 1
            self.log_rest(run, 404, note="recording not ready yet (injected fault)")
            return twilio_error(404, 20404, "recording not ready yet")
        if ext not in ("", "wav", "mp3"):
            return twilio_error(404, 20404, f"unknown media type .{ext}")
        data, mimetype = ((audio.pcm16_to_mp3(pcm), "audio/mpeg") if ext == "mp3"
                          else (audio.wav_bytes(pcm), "audio/x-wav"))
        redirect = run.faults.get("recording_redirect") if run is not None else None
        if redirect:  # Twilio hands the media out from storage: a pre-signed URL (or not)
            key = f"{account}/{name}"
            self.storage.put(key, data, mimetype)
            where = (self.storage.unsigned_url(key) if redirect == "unsigned"
                     else self.storage.presigned_url(key))
            self.log_rest(run, 302, location=where)
            return Response(status=302, headers={"Location": where})
        self.log_rest(run, 200)
        return Response(data, mimetype=mimetype)

    def monitor_authorized(self) -> bool:
        auth = request.authorization
        return bool(auth and auth.username == self.account_sid
                    and auth.password == self.auth_token)

    def list_alerts(self) -> Response:
        """Monitor's GET /v1/Alerts (at monitor.twilio.com; here, on the same host)."""
        if not self.monitor_authorized():
            return twilio_error(401, 20003)
        return jsonify(self.alerts.page(request.args.to_dict(), self.url))

    def fetch_alert(self, sid: str) -> Response:
        if not self.monitor_authorized():
            return twilio_error(401, 20003)
        alert = self.alerts.find(sid)
        if alert is None:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        return jsonify(alert)

    def fail_messages(self, count: int, status: int = 500, code: int = 20500) -> None:
        """The next `count` Messages POSTs (authenticated) fail with this Twilio error."""
        self.outbox.fail(count, status, code)

    def create_message(self, account: str) -> Response:
        form = request.form.to_dict()
        if not self.authorized(account):
            self.outbox.attempt(form, 401, 20003)
            return twilio_error(401, 20003)
        failure = self.outbox.next_failure()
        if failure is not None:
            status, code = failure
            self.outbox.attempt(form, status, code)
            return twilio_error(status, code)
        refused = invalid(form)
        if refused is not None:
            code, message = refused
            self.outbox.attempt(form, 400, code)
            return twilio_error(400, code, message)
        response = jsonify(resource(account, self.outbox.accept(form)))
        response.status_code = 201
        return response

    def place_call_api(self) -> Response:
        """Control API (not Twilio's): `python -m ivr call` asks this carrier to ring the line."""
        body = request.get_json(silent=True) or {}
        if body.get("token") != self.auth_token:
            return twilio_error(401, 20003)
        try:
            result = self.place_call(body.get("script", "three_turns"), body.get("speed"),
                                     **body.get("faults", {}))
        except ValueError as exc:
            return jsonify({"error": str(exc)}), 400
        return jsonify(result.to_dict())

    def messages_api(self) -> Response:
        """Control API (not Twilio's): the messages and attempts so far; `fail` injects failures."""
        body = request.get_json(silent=True) or {}
        if body.get("token") != self.auth_token:
            return twilio_error(401, 20003)
        if body.get("fail"):
            self.fail_messages(int(body["fail"]), int(body.get("status", 500)),
                               int(body.get("code", 20500)))
        with self.outbox.lock:
            return jsonify({"messages": list(self.messages),
                            "attempts": list(self.message_attempts)})

    def build_app(self) -> Flask:
        app = Flask("ivr-carrier")
        app.add_url_rule(f"{API}/Calls/<call>.json", "update", self.update_call, methods=["POST"])
        app.add_url_rule(f"{API}/Recordings/<name>", "recording", self.recording_media)
        app.add_url_rule(f"{API}/Messages.json", "messages", self.create_message,
                         methods=["POST"])
        app.add_url_rule("/v1/Alerts", "alerts", self.list_alerts)
        app.add_url_rule("/v1/Alerts/<sid>", "alert", self.fetch_alert)
        app.add_url_rule("/sim/calls", "calls", self.place_call_api, methods=["POST"])
        app.add_url_rule("/sim/messages", "sim-messages", self.messages_api, methods=["POST"])
        app.add_url_rule("/sim/health", "health", lambda: jsonify({"ok": True}))
        return app
