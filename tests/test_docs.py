"""The docs stay true: links resolve inside the repository, the settings page matches ivr/config.py,
and the limits and thread counts the docs state are the code's constants."""

import importlib.util
import re
from pathlib import Path

from ivr import asgi, config, recordings
from ivr.media import session, wire
from ivr.threads import POOLS

ROOT = Path(__file__).resolve().parent.parent
SKIP = {".git", ".venv", ".venv-peer", "var", "node_modules", ".pytest_cache", "static"}
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$", re.S | re.M)
CODE = re.compile(r"`[^`\n]*`")


def markdown_files() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.md")
                  if not SKIP & set(p.relative_to(ROOT).parts[:-1]))


def prose(text: str) -> str:
    """The text without code blocks and code spans (a link in code is not a link)."""
    return CODE.sub("code", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.replace("`", "")).strip().lower()
    return "".join(c for c in text if c.isalnum() or c in " -_").replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in FENCE.sub("", path.read_text(encoding="utf-8")).splitlines():
        if match := re.match(r"#{1,6} (.+?)\s*#*$", line):
            base = slug(match.group(1))
            name, n = base, 0
            while name in found:
                n += 1
                name = f"{base}-{n}"
            found.add(name)
    return found


def broken_links(path: Path) -> list[str]:
    problems = []
    for target in LINK.findall(prose(path.read_text(encoding="utf-8"))):
        where = f"{path.relative_to(ROOT)}: ({target})"
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):
            problems.append(f"{where} leaves the repository")
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.is_relative_to(ROOT):
            problems.append(f"{where} points outside the repository")
        elif not linked.exists():
            problems.append(f"{where}: no such file")
        elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
            problems.append(f"{where}: no heading with that anchor")
    return problems


def test_every_markdown_link_resolves_inside_the_repository():
    files = markdown_files()
    assert ROOT / "README.md" in files and ROOT / "docs" / "owner.md" in files
    assert [problem for path in files for problem in broken_links(path)] == []


def test_the_link_check_catches_what_it_must(tmp_path):
    page = ROOT / "docs" / "owner.md"
    assert "the-doctor" in anchors(page)
    assert slug("The stream path (`TURN_MODE=stream`)") == "the-stream-path-turn_modestream"
    assert slug("Twilio's warnings read back") == "twilios-warnings-read-back"
    text = "[a](../shared/DESIGN.md) [b](https://example.com) [c](owner.md#nowhere) `[d](x.md)`"
    assert [t for t in LINK.findall(prose(text))] == [
        "../shared/DESIGN.md", "https://example.com", "owner.md#nowhere"]


def settings_doc():
    path = ROOT / "scripts" / "settings_doc.py"
    spec = importlib.util.spec_from_file_location("settings_doc", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_page_is_generated_from_the_settings():
    doc = settings_doc()
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert page == doc.render(), \
        "docs/configuration.md is stale: run .venv/bin/python scripts/settings_doc.py"
    for f in config.env_fields():
        assert f"| `{config.env_name(f)}` |" in page
    assert "| `PORT` | `5000` | an integer from 1 to 65535 |" in page
    assert "| `TTS_DIR` | `static/tts` |" in page  # a checkout's folder, not this machine's path
    assert doc.main(["--check"]) == 0


def docs_text() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in markdown_files()}


def test_no_doc_contradicts_the_message_and_recording_limits():
    for name, text in docs_text().items():
        for paragraph in (" ".join(p.split()) for p in text.split("\n\n")):
            assert not ("8 MB" in paragraph and "recording" not in paragraph), (name, paragraph)
            assert not ("oversize" in paragraph and "MB" in paragraph), (name, paragraph)
    arch = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert f"| a message | {session.MAX_MESSAGE_BYTES // 1024} KB at most" in arch
    assert f"over {session.MAX_MESSAGE_BYTES // 1024} KB (`MAX_MESSAGE_BYTES`) closes" \
        in " ".join(arch.split())
    assert f"up to {recordings.MAX_RECORDING_BYTES // 2**20} MB" in arch
    assert f"over {asgi.MAX_BODY_BYTES // 1024} KB 413" in " ".join(arch.split())


def test_the_media_socket_limits_are_the_codes():
    arch = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip()
            for line in arch.splitlines() if line.startswith("| ")}
    kb, mb = 1024, 1024 * 1024
    assert rows["no valid `start` after the upgrade"] == \
        f"closed (1008) after {session.START_DEADLINE_SEC:g} s"
    assert f"and {wire.MAX_FRAGMENTS} frames;" in rows["a message"]
    slow_peer = rows["a peer that does not read"]
    assert f"while {wire.WRITE_HIGH_WATER // kb} KB wait" in slow_peer
    assert f"past {wire.MAX_BUFFERED_OUT // mb} MB waiting" in slow_peer
    assert f"no answer within {wire.CLOSE_TIMEOUT_SEC:g} s" in rows["our close frame"]
    flood = rows["a flood of frames"]
    assert flood.startswith(f"read {wire.FEED_BYTES // kb} KB per turn")
    assert rows["open media sockets per worker"].startswith(f"{session.MAX_MEDIA_SOCKETS};")


def test_the_thread_table_states_each_pool_as_the_code_sizes_it():
    arch = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip()
            for line in arch.splitlines() if line.startswith("| ")}
    for pool in POOLS.values():  # each kind of thread, with the size ivr/threads.py gives it
        label = f"lane `{pool.name}`" if pool.name in asgi.LANES else f"`{pool.name}`"
        size = {0: "one per job"}.get(pool.size, str(pool.size))
        if pool.name == "continuations":
            size = f"`CONTINUE_MAX_WAITING` + {pool.size}"
        assert rows.get(label) == size, pool.name
    for route, lane in asgi.LANE_OF_ROUTE.items():  # each route on the lane the code gives it
        line = next(line for line in arch.splitlines() if line.startswith(f"| lane `{lane}`"))
        assert f"`{route.removeprefix('/webhook/')}`" in line, (route, lane)


def test_every_thread_the_line_starts_is_a_kind_the_table_names():
    """No pool or thread is made outside ivr/threads.py (so its table is the whole list)."""
    makers = re.compile(r"ThreadPoolExecutor\(|threading\.Thread\(")
    found = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "ivr").rglob("*.py")
             if "sim" not in p.parts and p.name != "threads.py"
             and makers.search(p.read_text(encoding="utf-8")))
    assert found == ["ivr/doctor.py"]  # the doctor: its own process


def test_readme_is_short_and_names_what_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme) < 7000  # the front page: the rest is in docs/ (plus the eval's table)
    for command in ("make run", "make test", "make call", ".venv/bin/python -m ivr"):
        assert command in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci.splitlines()


def test_every_command_in_the_docs_uses_the_venv_python():
    for name, text in docs_text().items():
        blocks = [m.group(0) for m in FENCE.finditer(text)]
        for span in CODE.findall(FENCE.sub("", text)) + blocks:
            assert not re.search(r"(?<![/\w.])python -m (ivr|bench) \w", span), (name, span)


def test_every_recipe_starts_the_line_with_the_start_script():
    assert (ROOT / "Procfile").read_text(encoding="utf-8") == "web: bash scripts/start.sh\n"
    docker = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert 'CMD ["bash", "scripts/start.sh"]' in docker
    assert "pip install --no-cache-dir --disable-pip-version-check -r requirements.txt" in docker
    deploy = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert "web: bash scripts/start.sh" in deploy


def test_the_code_map_lists_every_module_of_the_line():
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    code_map = text[text.index("## Code map"):text.index("Outside `ivr/`:")]
    listed = set(re.findall(r"`(ivr/[\w/]+\.py)`", code_map))
    modules = {str(p.relative_to(ROOT)) for p in (ROOT / "ivr").rglob("*.py")
               if "sim" not in p.relative_to(ROOT).parts}
    faces = {"ivr/media/__init__.py", "ivr/web/__init__.py", "ivr/notify/__init__.py",
             "ivr/booking/__init__.py"}
    assert sorted(modules - listed - faces) == []  # a module missing from the map
    assert sorted(listed - modules) == []  # the map names a module that is gone
