#!/usr/bin/env bash
# Start the phone line: environment checks first, then exactly one gunicorn with WORKERS workers
# (default 1; `python -m ivr check` refuses more than one on SQLite).
# Hosted deployments: build `pip install -r requirements.txt`, run `bash scripts/start.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
export PORT="${PORT:-5000}"
export BIND_HOST="${BIND_HOST:-0.0.0.0}"
export WORKERS="${WORKERS:-1}"
"$PY" -m ivr check --port
# --no-control-socket: gunicorn's default ~/.gunicorn/gunicorn.ctl is one path for every master
# on the machine (a second line, a cluster's instances); the line does not use it.
# -c python:ivr.gunicorn_conf: the workers' /metrics files in VAR_DIR/metrics, summed when scraped
exec "$PY" -m gunicorn -w "$WORKERS" -k ivr.asgi.Worker --graceful-timeout 5 --no-control-socket \
  -c python:ivr.gunicorn_conf -b "$BIND_HOST:$PORT" app:app
