# make run: the line on its embedded defaults; make call: ring it; make test; make lint: ruff;
# make purge: delete what is older than RETENTION_DAYS now; make cluster: PostgreSQL, two instances
# and nginx (scripts/cluster.sh; make cluster-stop). make deploy-check: a clean venv on the newest
# Python found, pip install -r requirements.txt alone, scripts/start.sh until /healthz answers (with
# and without ffmpeg; minutes, not in make test; DEPLOY_CHECK_ARGS=--all for every 3.11+ found).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PEER_VENV := .venv-peer
PEER_STAMP := $(PEER_VENV)/.installed
PORT ?= 5000
export PORT
comma := ,

.PHONY: setup sysdeps run call doctor doctor-engines purge test test-fast eval lint clean cluster cluster-stop deploy-check bench bench-frame bench-turn bench-overhead bench-fallback bench-barge bench-backchannel bench-concurrency bench-flood bench-latency bench-sockets bench-short bench-webhooks bench-peer

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	@touch $(STAMP)

sysdeps:
	@bash scripts/install_system_deps.sh

setup: $(STAMP) sysdeps

run: setup
	$(PY) scripts/prewarm_tts.py
	bash scripts/run_local.sh

cluster: setup
	@bash scripts/install_system_deps.sh --with-cluster
	bash scripts/cluster.sh

cluster-stop:
	bash scripts/cluster.sh stop

doctor: setup
	$(PY) -m ivr doctor --url http://127.0.0.1:$(PORT)

doctor-engines: setup
	$(PY) -m ivr doctor --engines

# make call SCRIPT=barge_in FAULT="ws_refuse slow_rest=2" SPEED=10 (a shipped script's name or a
# YAML file; faults as `python -m ivr call --fault`, space- or comma-separated)
call: setup
	$(PY) -m ivr call --server http://127.0.0.1:$(PORT) \
	  --wav "$${VAR_DIR:-var}/last_call.wav" --log "$${VAR_DIR:-var}/last_call.jsonl" \
	  $(if $(SCRIPT),--script '$(SCRIPT)') $(foreach f,$(subst $(comma), ,$(FAULT)),--fault '$(f)') $(if $(SPEED),--speed $(SPEED))

purge: $(STAMP)
	$(PY) -m ivr purge

test: setup
	@bash scripts/install_system_deps.sh --with-browser
	$(PY) -m pytest -q

test-fast: setup  # the quick tests: no process started, no PostgreSQL/nginx/browser, no whole call
	$(PY) -m pytest -q -m "not live and not cluster"

# make eval: the Hebrew call scenarios (eval/scenarios) rung through the emulator on the scripted
# line and the OpenAI stand-in; a table, eval/results/eval.json, exit 1 on a failure. Minutes,
# not in make test. ENGINE=scripted|openai, ONLY=<scenario>; OPENAI_API_KEY set: a judge too.
eval: setup
	$(PY) -m eval.run $(if $(ENGINE),--engine $(ENGINE)) $(if $(ONLY),--only '$(ONLY)')

bench-frame: setup
	$(PY) -m bench.frame_cost

bench-turn: setup
	$(PY) -m bench.turn_time

bench-overhead: setup
	$(PY) -m bench.turn_overhead

bench-fallback: setup
	$(PY) -m bench.fallback

bench-barge: setup
	$(PY) -m bench.barge_in

bench-backchannel: setup
	$(PY) -m bench.backchannel

bench-concurrency: setup
	$(PY) -m bench.concurrency

bench-sockets: setup
	$(PY) -m bench.socket_cost

bench-flood: setup
	$(PY) -m bench.socket_flood

# make bench-latency ASR=google: the line hears the caller live through Google's streaming client
# (bench/google_profile.py: a local stand-in over TLS) instead of the profile's transcription
bench-latency: setup
	$(PY) -m bench.latency $(if $(ASR),--asr $(ASR))

# make bench-peer: the line (stream, play) and a standard Pipecat Twilio bot from PyPI in its own
# virtualenv (.venv-peer, bench/requirements-peer.txt: pins that conflict with the line's), one run
bench-peer: setup $(PEER_STAMP)
	$(PY) -m bench.peer

$(PEER_STAMP): bench/requirements-peer.txt
	@test -x $(PEER_VENV)/bin/python || python3 -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install -q --disable-pip-version-check -r bench/requirements-peer.txt
	@touch $(PEER_STAMP)

bench-short: setup
	$(PY) -m bench.short_answers

bench-webhooks: setup
	@bash scripts/install_system_deps.sh --with-cluster
	$(PY) -m bench.webhook_fuzz

bench: bench-frame bench-turn bench-overhead bench-fallback bench-barge bench-backchannel bench-concurrency bench-flood bench-latency bench-short bench-webhooks

deploy-check:
	python3 scripts/deploy_check.py $(DEPLOY_CHECK_ARGS)

lint: setup
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) var static/tts/*.mp3 .pytest_cache
