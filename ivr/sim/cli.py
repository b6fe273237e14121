"""`python -m ivr carrier` (the local Twilio) and `python -m ivr call` (ring the line, print it)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

import requests

from ..config import Settings, is_loopback_host
from .carrier import FAULTS, Carrier
from .linewords import conversation, line_turns, prompt_words, replies, words_of_files
from .result import CallResult
from .script import CallerScript, ScriptError, read_script, shipped_scripts, unmet_expectations


def cmd_carrier(args: argparse.Namespace) -> int:
    """Serve the emulated Twilio REST API (and the control API `call` uses) until stopped."""
    settings = Settings.from_env()
    key = settings.twilio_webhook_shared_key.split(",")[0].strip()
    if args.shared_key and not key:
        raise SystemExit("--shared-key signs with TWILIO_WEBHOOK_SHARED_KEY, which is not set")
    carrier = Carrier(args.server or f"http://127.0.0.1:{settings.port}",
                      account_sid=settings.twilio_account_sid,
                      auth_token=settings.twilio_auth_token, port=args.port,
                      gather_hebrew=args.gather_lists,
                      shared_key=("KS" + "e" * 32, key, "HMAC_SHA256") if args.shared_key
                      else None)
    print(f"local Twilio emulator on {carrier.url} (line {carrier.server_url})", flush=True)
    try:
        carrier.server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def parse_faults(items: list[str]) -> dict:
    faults: dict = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in FAULTS:
            raise SystemExit(f"unknown fault {name!r}; known: {', '.join(sorted(FAULTS))}")
        faults[name] = float(value) if value.replace(".", "", 1).isdigit() else (value or True)
    return faults


def running_carrier(url: str) -> bool:
    """A carrier answers on `url`. Nothing listening is refused at once; the roomy timeout is
    for a carrier that is there but slow to answer (a loaded machine), which must not be
    mistaken for none."""
    try:
        return requests.get(url + "/sim/health", timeout=10).ok
    except requests.RequestException:
        return False


def place(args: argparse.Namespace, settings: Settings, raw: dict) -> CallResult:
    faults = parse_faults(args.fault)
    carrier_url = args.carrier or settings.twilio_api_base_url
    if is_loopback_host(urlsplit(carrier_url).hostname) and running_carrier(carrier_url):
        body = {"token": settings.twilio_auth_token, "script": raw,
                "speed": args.speed, "faults": faults}
        response = requests.post(carrier_url + "/sim/calls", json=body, timeout=600)
        if response.status_code != 200:
            raise SystemExit(f"the carrier refused the call: {response.text.strip()}")
        return CallResult.from_dict(response.json())
    print(f"no local carrier at {carrier_url}: using a private one (REST updates from the line "
          f"cannot reach it; the line falls back to action delivery)", file=sys.stderr)
    with Carrier(args.server, account_sid=settings.twilio_account_sid,
                 auth_token=settings.twilio_auth_token) as carrier:
        return carrier.place_call(raw, args.speed, **faults)


def cmd_call(args: argparse.Namespace) -> int:
    """Ring the line with a caller script; print the timeline with the line's words, and what
    the script expected it to answer; write the WAV and request log. Exit 1 on a Twilio error
    or an unmet `expect`."""
    settings = Settings.from_env()
    args.server = (args.server or f"http://127.0.0.1:{settings.port}").rstrip("/")
    try:
        raw = read_script(args.script)
        script = CallerScript.from_dict(raw)  # a bad script stops here, with the step wrong
    except ScriptError as exc:
        raise SystemExit(f"caller script: {exc}") from None
    result = place(args, settings, raw)
    turns = line_turns(settings.database_url, result.call_sid, script.answered)
    print(result.timeline_text({**prompt_words(settings), **words_of_files(turns)}))
    if turns:
        print("what the line heard and said (its records):\n" + conversation(turns))
    else:
        print(f"(the line's words are not in {settings.database_url}: its records are kept "
              "elsewhere; set DATABASE_URL to the line's to see them)")
    unmet = unmet_expectations(script, replies(turns)) if turns else []
    for problem in unmet:
        print(f"EXPECTED: {problem}")
    print(f"heard {len(result.heard)} time(s), said {len(result.said)} sentence(s), "
          f"{len(result.requests)} request(s), Twilio errors: {result.error_codes or 'none'}"
          + (f", {len(unmet)} expectation(s) unmet" if unmet else ""))
    if args.wav:
        Path(args.wav).parent.mkdir(parents=True, exist_ok=True)
        Path(args.wav).write_bytes(result.wav)
        print(f"audio (caller left, line right): {args.wav}")
    if args.log:
        Path(args.log).parent.mkdir(parents=True, exist_ok=True)
        Path(args.log).write_text(result.jsonl(), encoding="utf-8")
        print(f"request log: {args.log}")
    if args.json:
        print(json.dumps(result.to_dict(with_audio=False), ensure_ascii=False))
    return 1 if result.error_codes or unmet else 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    carrier = sub.add_parser("carrier", help="run the local Twilio emulator's REST side")
    carrier.add_argument("--port", type=int, default=0)
    carrier.add_argument("--server", help="the line's URL (default http://127.0.0.1:$PORT)")
    carrier.add_argument("--gather-lists", choices=("iw-IL", "he-IL"), default="iw-IL",
                         help="the Hebrew <Gather> tag Twilio's table lists (the other: 13331)")
    carrier.add_argument("--shared-key", action="store_true",
                         help="sign webhooks with TWILIO_WEBHOOK_SHARED_KEY (HMAC_SHA256), as a "
                              "Twilio Webhooks Rule does, instead of the auth token")
    carrier.set_defaults(func=cmd_carrier)
    call = sub.add_parser("call", help="call the line with a caller script and print the call")
    call.add_argument("--server", help="the line's URL (default http://127.0.0.1:$PORT)")
    call.add_argument("--script", default="three_turns",
                      help="a YAML file or a shipped script: " + ", ".join(shipped_scripts()))
    call.add_argument("--wav", help="write the call as a stereo WAV (caller left, line right)")
    call.add_argument("--log", help="write the request log as JSONL")
    call.add_argument("--speed", type=float, default=1.0, help="run N times faster than real time")
    call.add_argument("--carrier", help="a running carrier (default $TWILIO_API_BASE_URL)")
    call.add_argument("--fault", action="append", default=[],
                      help="inject a fault: " + ", ".join(sorted(FAULTS)) + " (name or name=value)")
    call.add_argument("--json", action="store_true", help="also print the result as JSON")
    call.set_defaults(func=cmd_call)
