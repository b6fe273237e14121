"""python -m ivr check | serve | carrier | call: thin commands over the package."""

from __future__ import annotations

import argparse
import os
import socket
import sys

from .config import ConfigError, Settings

GUNICORN = ["-m", "gunicorn", "-w", "1", "--threads", "64", "--graceful-timeout", "5", "app:app"]


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on host:port (an old server still running)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def cmd_check(_args: argparse.Namespace) -> int:
    """Validate the environment; print every problem at once; exit 1 on any."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    for warning in settings.warnings:
        print(warning, file=sys.stderr)
    bind = os.environ.get("BIND_HOST", "0.0.0.0")
    if port_in_use(bind, settings.port):
        print(f"port {settings.port} is already in use: an old server is still running; "
              f"stop it first (e.g. pkill -f 'gunicorn.*app:app')", file=sys.stderr)
        return 1
    mode = "local emulator" if settings.local_mode else settings.twilio_api_base_url
    print(f"config OK: base={settings.public_base_url} turn_mode={settings.turn_mode} "
          f"reply_mode={settings.reply_mode} asr={settings.asr_engine} llm={settings.llm_engine} "
          f"tts={settings.tts_engine} twilio={mode}")
    return 0


def cmd_serve(_args: argparse.Namespace) -> int:
    """Replace this process with the one gunicorn of the deploy command."""
    bind = f"{os.environ.get('BIND_HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
    argv = [sys.executable] + GUNICORN[:-1] + ["-b", bind, GUNICORN[-1]]
    os.execv(sys.executable, argv)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ivr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="validate the environment").set_defaults(func=cmd_check)
    sub.add_parser("serve", help="run gunicorn (one worker)").set_defaults(func=cmd_serve)
    from .sim.cli import add_commands
    add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
