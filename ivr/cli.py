"""python -m ivr check | serve | prewarm | purge | doctor | import-site | carrier | call: thin
commands."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from .config import ConfigError, Settings, account_problems

GUNICORN = ["-m", "gunicorn", "-k", "ivr.asgi.Worker", "--graceful-timeout", "5",
            "--no-control-socket", "app:app"]  # as scripts/start.sh runs it


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on host:port (an old server still running)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def port_holder(port: int) -> tuple[str, int | None]:
    """Who listens on TCP `port`, as psutil sees it: ("gunicorn: master [app:app]", 123), the
    topmost of the processes that make up that server (a master, not the worker psutil lists:
    killing a worker only makes the master fork another); a process this user may not look
    into is (a description, None)."""
    import psutil
    try:
        sockets = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return "another process", None
    pids = {c.pid for c in sockets if c.status == psutil.CONN_LISTEN and c.laddr
            and c.laddr.port == port and c.pid}
    if not pids:
        return "a process of another user", None
    try:
        proc = psutil.Process(min(pids))
        while (parent := proc.parent()) is not None and same_server(parent, proc, pids, port):
            proc = parent
        return " ".join(" ".join(proc.cmdline()).split())[:80] or proc.name(), proc.pid
    except psutil.Error:
        return "a process", min(pids)


def same_server(parent, child, pids: set[int], port: int) -> bool:
    """Whether `parent` is the server `child` belongs to (stopping the child alone would only
    make it start another): it is listed on the port, or holds the listening socket itself (an
    inherited one is listed under one pid only), or runs the very same command (a forked
    worker: gunicorn's without setproctitle), or is a gunicorn master. Never init or systemd,
    which hold a socket-activated service's socket."""
    import psutil
    try:
        if parent.pid == 1 or parent.name() == "systemd":
            return False
        if parent.pid in pids or parent.cmdline() == child.cmdline() \
                or parent.name().startswith("gunicorn: master"):
            return True
        return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                   for c in parent.net_connections(kind="tcp"))
    except psutil.Error:
        return False


def port_problem(host: str, port: int) -> str:
    """One line when a new server could not listen on host:port, naming who holds it (and the
    one process to stop, never a pattern that matches others); "" if it could listen."""
    if not port_in_use(host, port):
        return ""
    holder, pid = port_holder(port)
    if pid is None:
        return f"port {port} is already in use by {holder}; stop it or set PORT"
    return (f"port {port} is already in use by {holder} (pid {pid}): if that is an old server, "
            f"stop it (kill {pid}), else set PORT")


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the environment; print every problem at once; exit 1 on any. Beside a running
    line as well: the port is probed only with --port (a new server is about to listen)."""
    settings = Settings.from_env()
    settings.prepare()
    for warning in settings.warnings:
        print(warning, file=sys.stderr)
    account = account_problems(settings)
    for problem in account:
        print(f"bad configuration: {problem}", file=sys.stderr)
    if account:
        return 1
    from .engines import EngineError, build_engines
    from .engines.scripted import DEFAULT_FLOW
    from .facts.facts import LiveFacts
    from .owner import Owner
    try:
        build_engines(settings)
        owner = Owner.from_settings(settings, settings.flow_file or DEFAULT_FLOW)
        facts = LiveFacts.from_settings(settings)
    except (EngineError, OSError, ValueError) as exc:
        print(f"bad configuration: {exc}", file=sys.stderr)
        return 1
    models_fine, programs_fine = models_ok(settings), programs_ready(settings)
    if not (models_fine and programs_fine):
        return 1
    problem = port_problem(settings.bind_host, settings.port) if args.port else ""
    if problem:
        print(problem, file=sys.stderr)
        return 1
    mode = "local emulator" if settings.local_mode else settings.twilio_api_base_url
    print(f"config OK: base={settings.public_base_url} turn_mode={settings.turn_mode} "
          f"reply_mode={settings.reply_mode} asr={settings.asr_engine} llm={settings.llm_engine} "
          f"tts={settings.tts_engine} twilio={mode} workers={settings.workers}")
    print(owner_line(settings, owner))
    print(facts_line(facts))
    if not settings.inspector_token and not settings.public_on_loopback:
        print("inspector: locked (401) until INSPECTOR_TOKEN is set")
    return 0


def facts_line(facts) -> str:
    """What the line knows of the business: its facts file's passages, the site's reviewed
    ones and the owner's answers in the inbox (and a broken review file named)."""
    now = facts.current()
    own = len(now.passages) - now.from_site - now.from_inbox
    line = f"facts: {own} passages from {facts.source.path}"
    line += f", {now.from_site} reviewed from the site" if now.from_site else ""
    if now.from_inbox:
        line += f", {now.from_inbox} answer{'s' if now.from_inbox != 1 else ''} from the inbox"
    return line + (f" ({facts.problem})" if facts.problem else "")


def models_ok(settings: Settings) -> bool:
    """Warn of each configured OpenAI model with an announced shutdown; False (refused) when one
    has been shut down already, naming the date and a current replacement."""
    from datetime import date

    from .engines.openai_models import model_notes
    notes = model_notes(settings, date.today())
    for note in notes:
        print(("bad configuration: " if note.refused else "") + note.message(), file=sys.stderr)
    return not any(note.refused for note in notes)


def programs_ready(settings: Settings) -> bool:
    """Print each program the configuration needs and lacks (False if any), and note the ones
    missing that it does not need."""
    from . import programs
    missing = programs.problems(settings)
    for problem in missing:
        print(problem, file=sys.stderr)
    for program, state in programs.status(settings).items():
        if state == "not needed" and not programs.found(program):
            print(f"{program}: not installed; needed only with {programs.USES[program].setting}")
    return not missing


def owner_line(settings: Settings, owner) -> str:
    """One line on reaching and telling the owner, as configured."""
    reach = "no OWNER_PHONE: messages only" if not owner.phone else (
        f"owner {owner.phone} ({'open' if owner.hours.is_open() else 'closed'} now"
        f"{', rung first' if owner.ring_first else ''})")
    tell = [f"sms to {settings.notify_sms_to}"] if settings.notify_sms_to else []
    tell += [f"email to {settings.notify_email_to}"] if settings.notify_email_to else []
    return f"{reach}; notifications: {', '.join(tell) or 'none'}"


def cmd_serve(_args: argparse.Namespace) -> int:
    """Replace this process with the one gunicorn of the deploy command (WORKERS workers)."""
    settings = Settings.from_env()
    bind = f"{settings.bind_host}:{settings.port}"
    argv = ([sys.executable] + GUNICORN[:-1] + ["-w", str(settings.workers), "-b", bind,
                                                GUNICORN[-1]])
    os.execv(sys.executable, argv)
    return 0


def cmd_prewarm(args: argparse.Namespace) -> int:
    """Synthesise the prompts, the flow's sentences and a phrases file into the TTS cache."""
    from .engines import EngineError, build_engines
    from .tts_cache import TTSCache
    from .tts_cache.prompts import prewarm, read_phrases
    settings = Settings.from_env()
    settings.prepare()
    try:
        engines = build_engines(settings)
    except EngineError as exc:
        print(exc, file=sys.stderr)
        return 1
    if engines.tts is None:
        print(f"TTS_ENGINE={settings.tts_engine}: nothing to prewarm", file=sys.stderr)
        return 1
    cache = TTSCache(settings.tts_dir, settings.tts_cache_max_mb, name_key=settings.tts_name_key)
    stats = prewarm(cache, engines.tts, engines.llm, settings, read_phrases(args.phrases))
    print(f"prewarm: {stats['total']} sentences, {stats['cached']} already cached, "
          f"{stats['synthesized']} synthesised, {stats['failed']} failed ({settings.tts_dir})")
    return 1 if stats["failed"] else 0


def cmd_purge(args: argparse.Namespace) -> int:
    """Delete calls, events, recordings and unused TTS files older than the retention horizon."""
    from .eventlog import EventLog
    from .retention import purge
    from .store import Store
    settings = Settings.from_env()
    days = settings.retention_days if args.days is None else args.days
    store = Store(settings.database_url)
    try:
        counts = purge(settings, store, EventLog(store, settings.secrets()), days=days)
    finally:
        store.close()
    summary = " ".join(f"{name}={count}" for name, count in counts.items())
    print(f"purge: older than {days} days: {summary} (leads kept)")
    return 0


def int_arg(low: int, high: int):
    """An argparse type: an integer from low to high (config.int_range), reported as argparse
    reports bad values."""
    from .config import int_range

    def parse(raw: str) -> int:
        try:
            return int_range(low, high)(raw)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return parse


retention_days = int_arg(1, 3650)  # --days: the RETENTION_DAYS range


def cmd_doctor(args: argparse.Namespace) -> int:
    """GO/NO-GO checks against a deployment and its engines (--engines alone: the engines only);
    exit status 1 on any FAIL."""
    from urllib.parse import urlsplit

    from .config import LOCAL_ACCOUNT_SID, is_loopback_host, local_auth_token
    from .doctor import EMULATOR_TOKEN, Doctor, report
    from .engines.probe import probe_configured
    from .engines.probe import report as engines_report
    if not args.url and not args.engines:
        print("doctor: give --url https://your-host, or --engines", file=sys.stderr)
        return 2
    settings = Settings.from_env()  # the engines probed are this environment's
    settings.prepare()
    if not args.url:
        probes = probe_configured(settings)
        print(engines_report(probes))
        return 0 if all(probe.ok for probe in probes) else 1
    token, account = args.token or "", args.account or ""
    source = "--token" if token else "TWILIO_AUTH_TOKEN"
    if not settings.local_mode:  # the emulator's account is for a line on this machine only
        token = token or settings.twilio_auth_token
        account = account or settings.twilio_account_sid
    if not token and is_loopback_host(urlsplit(args.url).hostname):
        token, source = local_auth_token(Path(settings.var_dir)), EMULATOR_TOKEN
        account = account or LOCAL_ACCOUNT_SID
    results = Doctor(args.url, token, account, settings, source).run()
    print(report(results))
    return 0 if all(check.ok for check in results) else 1


def cmd_import_site(args: argparse.Namespace) -> int:
    """Read a few pages of the owner's site into the review file beside the facts file."""
    from urllib.parse import urlsplit

    from .facts.facts import DEFAULT_FACTS, IMPORTED
    from .facts.importer import Limits, crawl, write_review
    if urlsplit(args.url).scheme not in ("http", "https") or not urlsplit(args.url).hostname:
        print(f"import-site: {args.url!r}: expected the site's http(s):// address",
              file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else \
        Path(Settings.from_env().facts_file or DEFAULT_FACTS).parent / IMPORTED
    limits = Limits(pages=args.pages, page_bytes=args.page_kb * 1024,
                    deadline_sec=args.deadline, delay_sec=args.delay)
    result = crawl(args.url, limits)
    for url, why in result.skipped:
        print(f"import-site: skipped {url}: {why}")
    if not result.fetched:
        print(f"import-site: no page of {args.url} could be read", file=sys.stderr)
        return 1
    new = write_review(out, args.url, result.passages)
    print(f"import-site: {len(result.fetched)} pages read, {len(result.passages)} passages "
          f"({new} new) written to {out}: read them and set reviewed: true for each the line "
          "may use")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ivr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate the environment (also beside a running line)")
    check.add_argument("--port", action="store_true",
                       help="also refuse a PORT another process listens on (before a new server)")
    check.set_defaults(func=cmd_check)
    sub.add_parser("serve", help="run gunicorn (WORKERS workers)").set_defaults(func=cmd_serve)
    prewarm = sub.add_parser("prewarm", help="fill the TTS MP3 cache (greeting, fallbacks, flow)")
    prewarm.add_argument("--phrases", help="a text file with one more phrase a line")
    prewarm.set_defaults(func=cmd_prewarm)
    purge = sub.add_parser("purge", help="delete calls, events, recordings and unused TTS "
                           "files older than RETENTION_DAYS (leads are kept)")
    purge.add_argument("--days", type=retention_days, help="override RETENTION_DAYS once")
    purge.set_defaults(func=cmd_purge)
    doctor = sub.add_parser("doctor", help="GO/NO-GO checks against a deployment and one real "
                            "request per engine")
    doctor.add_argument("--url", help="the deployment, e.g. https://host")
    doctor.add_argument("--engines", action="store_true",
                        help="only the engines: one tiny real request each (no line needed)")
    doctor.add_argument("--token", help="TWILIO_AUTH_TOKEN (default: the environment's)")
    doctor.add_argument("--account", help="TWILIO_ACCOUNT_SID (default: the environment's)")
    doctor.set_defaults(func=cmd_doctor)
    site = sub.add_parser("import-site", help="read a few pages of the business's site into "
                          "facts_imported.yaml beside FACTS_FILE, for review")
    site.add_argument("url", help="the site's address, e.g. https://example.co.il")
    site.add_argument("--pages", type=int_arg(1, 100), default=10, help="pages to read (10)")
    site.add_argument("--page-kb", type=int_arg(1, 20000), default=1000,
                      help="a larger page is skipped (1000 KB)")
    site.add_argument("--deadline", type=int_arg(1, 3600), default=60,
                      help="seconds the whole import may take (60)")
    site.add_argument("--delay", type=float, default=1.0,
                      help="seconds between two requests (1; more if robots.txt asks)")
    site.add_argument("--out", help="the review file (default facts_imported.yaml beside "
                      "FACTS_FILE)")
    site.set_defaults(func=cmd_import_site)
    from .sim.cli import add_commands
    add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; a bad environment is one message naming every problem, and status 1."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
