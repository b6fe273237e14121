#!/usr/bin/env bash
# `make run`: the line on its embedded defaults. With no TWILIO_ACCOUNT_SID (local mode) the
# emulated carrier runs beside it on PORT+1 and the line's TWILIO_API_BASE_URL points at it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
export PORT="${PORT:-5000}"
export BIND_HOST="${BIND_HOST:-127.0.0.1}"
if [ -z "${TWILIO_ACCOUNT_SID:-}" ]; then
  carrier_port="${CARRIER_PORT:-$((PORT + 1))}"
  export TWILIO_API_BASE_URL="${TWILIO_API_BASE_URL:-http://127.0.0.1:$carrier_port}"
  "$PY" -m ivr carrier --port "$carrier_port" --server "http://127.0.0.1:$PORT" &
  carrier_pid=$!
  trap 'kill "$carrier_pid" 2>/dev/null || true' EXIT INT TERM
fi
bash scripts/start.sh
