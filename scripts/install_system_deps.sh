#!/usr/bin/env bash
# Install espeak-ng and ffmpeg (with --with-cluster also PostgreSQL's server binaries and nginx,
# for scripts/cluster.sh; with --with-browser what the tests need: those, chromium and its
# chromedriver, and Prometheus, which scrapes /metrics in tests/test_prometheus.py) with apt when
# missing and allowed.
set -u
missing=()
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
if [ "${1:-}" = "--with-browser" ]; then  # the inspector's browser tests need them, the line not
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)  # Selenium drives it
fi
if [ "${1:-}" = "--with-browser" ] || [ "${1:-}" = "--with-cluster" ]; then
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
    echo "WARNING: missing ${missing[*]}; install them: sudo apt-get install -y ${missing[*]}" >&2
    exit 0
  fi
fi
echo "installing ${missing[*]} with apt…" >&2
$sudo apt-get update -qq >/dev/null && \
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null || { echo "apt-get install ${missing[*]} failed" >&2; exit 1; }
