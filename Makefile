# make run: start the line on its embedded defaults; make test: the test suite; make lint: ruff.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 5000
export PORT

.PHONY: setup sysdeps run test lint clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	@touch $(STAMP)

sysdeps:
	@bash scripts/install_system_deps.sh

setup: $(STAMP) sysdeps

run: setup
	BIND_HOST=$${BIND_HOST:-127.0.0.1} bash scripts/start.sh

test: setup
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) var static/tts/*.mp3 .pytest_cache
