#!/usr/bin/env bash
# Start the phone line: environment checks first, then exactly one gunicorn (one worker).
# Hosted deployments: build `pip install -r requirements.txt`, run `bash scripts/start.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
export PORT="${PORT:-5000}"
export BIND_HOST="${BIND_HOST:-0.0.0.0}"
"$PY" -m ivr check
exec "$PY" -m gunicorn -w 1 -k ivr.asgi.Worker --graceful-timeout 5 -b "$BIND_HOST:$PORT" app:app
