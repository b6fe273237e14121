"""A hosted deploy, rehearsed: per Python, a clean venv with `pip install -r requirements.txt`
alone, then `bash scripts/start.sh` until /healthz answers; again with ffmpeg hidden from PATH.

Takes minutes (the pip install), so it is `make deploy-check`, not part of `make test`.

    python3 scripts/deploy_check.py                # the newest Python found (3.11 or later)
    python3 scripts/deploy_check.py --all          # each minor version found, newest first
    python3 scripts/deploy_check.py --python /path/to/python3.13 [--python …] [--keep]

Only the standard library: it runs on the machine's own python3, not inside a venv.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OLDEST = (3, 11)
PIP_TIMEOUT_SEC = 1800
BOOT_TIMEOUT_SEC = 180  # a deadline for a loaded machine, not a speed requirement
HIDDEN = ("ffmpeg", "ffprobe")
PRIVATE = ("TWILIO_", "OPENAI_", "GOOGLE_", "GCP_", "PIP_REQUIRE", "VIRTUAL_ENV", "PYTHON")


def version_of(python: str) -> tuple[int, int, int] | None:
    """The interpreter's version, or None when it does not run (e.g. a pyenv shim not selected)."""
    try:
        out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:3])"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        return tuple(int(part) for part in out.split())  # type: ignore[return-value]
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def candidates() -> dict[tuple[int, int], tuple[tuple[int, int, int], str]]:
    """Minor version → (newest full version, interpreter) among pythonX.Y on PATH and pyenv's."""
    found: dict[tuple[int, int], tuple[tuple[int, int, int], str]] = {}
    paths = [shutil.which(f"python3.{minor}") for minor in range(OLDEST[1], 20)]
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    paths += sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin", "python3")))
    for path in filter(None, paths):
        version = version_of(path)
        if version and version[:2] >= OLDEST and version > found.get(version[:2], ((0,),))[0]:
            found[version[:2]] = (version, path)
    return found


def copy_checkout(dest: Path) -> None:
    """The files a deploy gets: tracked and new (not ignored) ones, as they are now; no .venv."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, names):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def path_without(folder: Path, hidden: tuple[str, ...]) -> str:
    """A PATH like this one, every program linked into `folder` except the `hidden` ones."""
    folder.mkdir(parents=True, exist_ok=True)
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        for entry in (os.scandir(directory) if os.path.isdir(directory) else ()):
            target = folder / entry.name
            if (entry.name not in hidden and not target.exists()
                    and os.access(entry.path, os.X_OK) and not entry.is_dir()):
                target.symlink_to(entry.path)
    return str(folder)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[int, str, bytes]:
    """Status, content type and body of a GET (an HTTP error status is an answer too)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def boot(src: Path, work: Path, venv: Path, system_path: str, label: str) -> list[str]:
    """Run scripts/start.sh until /healthz answers; the problems found (none: it booted ok)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(PRIVATE)}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{system_path}", PORT=str(port),
               BIND_HOST="127.0.0.1", VAR_DIR=str(work / "var"), TTS_DIR=str(work / "tts"),
               DATABASE_URL=f"sqlite:///{work / 'ivr.sqlite3'}", PYTHONUNBUFFERED="1")
    log = (work / f"{label}.log").open("w")
    proc = subprocess.Popen(["bash", "scripts/start.sh"], cwd=src, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return served(f"http://127.0.0.1:{port}", proc, work / f"{label}.log")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        log.close()


def served(base: str, proc: subprocess.Popen, log: Path) -> list[str]:
    """Wait for /healthz; then it must be 200 "ok" and the beep an MP3 served as audio/mpeg."""
    started, deadline = time.monotonic(), time.monotonic() + BOOT_TIMEOUT_SEC
    while True:
        if proc.poll() is not None:
            return [f"start.sh exited {proc.returncode}: {log.read_text()[-1500:]}"]
        try:
            status, _, body = get(base + "/healthz")
            break
        except OSError:
            if time.monotonic() > deadline:
                return [f"/healthz did not answer in {BOOT_TIMEOUT_SEC} s"]
            time.sleep(0.2)
    print(f"    /healthz answered after {time.monotonic() - started:.1f} s: {status} "
          f"{body.decode(errors='replace')[:300]}")
    problems = [] if status == 200 and b'"status":"ok"' in body else [f"/healthz {status}"]
    names = ["beep.mp3", *first_turn_plays(base)]
    print(f"    MP3s fetched: {', '.join(names)}")
    return problems + [f"{name}: {problem}" for name in names
                       if (problem := mp3_problem(base + "/static/tts/" + name))]


def first_turn_plays(base: str) -> list[str]:
    """The files the first turn's TwiML plays (the preview of /webhook/incoming_call: the
    greeting is synthesised and encoded for it, by espeak-ng on the embedded defaults)."""
    _, _, body = get(base + "/webhook/incoming_call")
    plays = ET.fromstring(body).iter("Play")
    return [play.text.rsplit("/", 1)[-1] for play in plays if play.text]


def mp3_problem(url: str) -> str:
    """What is wrong with an MP3 the line serves ("" when it is one, as audio/mpeg)."""
    status, kind, data = get(url)
    if status != 200 or kind != "audio/mpeg" or data[:1] not in (b"\xff", b"I"):
        return f"{status} {kind} {data[:4]!r}"
    return ""


def check_python(python: str, keep: bool) -> bool:
    """One interpreter: clean venv, pip install, boot with and without ffmpeg; True when ok."""
    version = ".".join(map(str, version_of(python) or ()))
    work = Path(tempfile.mkdtemp(prefix=f"deploy-check-{version}-"))
    print(f"== Python {version} ({python}) in {work}")
    try:
        src, venv = work / "src", work / "venv"
        copy_checkout(src)
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        began = time.monotonic()
        with (work / "pip.log").open("w") as log:
            pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install",
                                  "--disable-pip-version-check", "-r", "requirements.txt"],
                                 cwd=src, stdout=log, stderr=subprocess.STDOUT,
                                 timeout=PIP_TIMEOUT_SEC)
        print(f"    pip install -r requirements.txt: exit {pip.returncode} in "
              f"{time.monotonic() - began:.0f} s (log: {work / 'pip.log'})")
        if pip.returncode != 0:
            print((work / "pip.log").read_text()[-3000:])
            return False
        problems = boot(src, work, venv, os.environ.get("PATH", ""), "boot")
        print(f"    boot with this machine's PATH: {'; '.join(problems) or 'OK'}")
        hidden_path = path_without(work / "bin-no-ffmpeg", HIDDEN)
        without = boot(src, work, venv, hidden_path, "boot-no-ffmpeg")
        print(f"    boot with ffmpeg hidden: {'; '.join(without) or 'OK'}")
        return not problems and not without
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", help="an interpreter to check (repeatable)")
    parser.add_argument("--all", action="store_true", help="each minor version found")
    parser.add_argument("--keep", action="store_true", help="keep the venvs and logs")
    args = parser.parse_args()
    found = [path for _, path in sorted(candidates().values(), reverse=True)]
    pythons = args.python or (found if args.all else found[:1])
    if not pythons:
        print("no Python 3.11 or later found", file=sys.stderr)
        return 1
    results = {python: check_python(python, args.keep) for python in pythons}
    for python, ok in results.items():
        print(f"{'PASS' if ok else 'FAIL'} {python}")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
