"""The import graph: no circle, no arrow from a lower floor to a higher one, no product module
depending on the emulator (ARCHITECTURE.md's layers, checked). The circle check covers ivr.sim
too: there `call` (with `clock`, `result`) is the bottom and `carrier` the top."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "ivr"
FLOORS = [  # lowest first; a module may import its own floor or lower ones
    {"ivr", "ivr.media", "ivr.web", "ivr.notify",  # the packages' faces import nothing
     "ivr.config", "ivr.phrases", "ivr.audio", "ivr.twiml", "ivr.schema", "ivr.google_voices",
     "ivr.signatures", "ivr.twilio_fields", "ivr.chunking", "ivr.reply", "ivr.speakable",
     "ivr.owner", "ivr.programs", "ivr.lanes", "ivr.flow", "ivr.notify.texts", "ivr.threads",
     "ivr.metrics", "ivr.tracing",
     "ivr.media.endpointing", "ivr.media.loop", "ivr.media.overheard", "ivr.media.last_words",
     "ivr.media.backchannel", "ivr.media.turn_end",
     "ivr.booking", "ivr.booking.hebrew_numbers", "ivr.booking.when",
     "ivr.booking.services", "ivr.booking.slots", "ivr.booking.sayings",
     "ivr.facts", "ivr.facts.words", "ivr.facts.figures", "ivr.facts.facts",
     "ivr.facts.retrieval", "ivr.facts.importer", "ivr.facts.grounding", "ivr.jobs"},
    {"ivr.store", "ivr.blob_store", "ivr.reply_store", "ivr.due_checks", "ivr.eventlog",
     "ivr.notify.outbox", "ivr.engines", "ivr.engines.base", "ivr.engines.fake",
     "ivr.engines.local", "ivr.engines.openai_engines", "ivr.engines.openai_realtime",
     "ivr.engines.google_engines", "ivr.engines.google_stream", "ivr.engines.scripted",
     "ivr.engines.openai_models", "ivr.media.early_asr", "ivr.booking.appointments",
     "ivr.booking.feed",
     "ivr.facts.gaps"},
    {"ivr.calls", "ivr.tts_cache", "ivr.tts_cache.prompts", "ivr.recordings", "ivr.delivery",
     "ivr.notify.notifier", "ivr.notify.send", "ivr.engines.errors", "ivr.engines.faults",
     "ivr.engines.probe", "ivr.twilio_alerts", "ivr.booking.caldav_sync",
     "ivr.booking.desk", "ivr.booking.tools", "ivr.booking.conversation"},
    {"ivr.dialog", "ivr.draft", "ivr.watchdog", "ivr.retention", "ivr.booking.notices",
     "ivr.booking.reminders", "ivr.notify.digest"},
    {"ivr.runtime"},
    {"ivr.media.turns", "ivr.reply_twiml"},
    {"ivr.media.session", "ivr.web.webhooks", "ivr.web.public", "ivr.web.inspector",
     "ivr.web.calendar_feed", "ivr.web.scrape"},
    {"ivr.asgi", "ivr.media.wire", "ivr.app", "ivr.doctor", "ivr.cli", "ivr.__main__",
     "ivr.gunicorn_conf"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Each module of ivr/ → the ivr modules it imports (inside functions too)."""
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1] \
                    if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    graph[name].add(full if full in modules else target)
            elif isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names)
        graph[name] = {t for t in graph[name] if t in modules and t != name}
    return graph


def test_no_module_imports_itself_through_others():
    graph = imports()

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph[start]:
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False
    circles = sorted(m for m in graph if reaches(m, m, {m}))
    assert circles == []


def test_arrows_point_down_the_floors():
    floor = {name: level for level, names in enumerate(FLOORS) for name in names}
    graph = imports()
    product = [m for m in graph if not m.startswith("ivr.sim")]
    assert sorted(set(product) - set(floor)) == []  # every product module has its floor
    upward = [(m, t) for m in product for t in graph[m]
              if not t.startswith("ivr.sim") and floor[t] > floor[m]]
    assert upward == []


def test_the_product_does_not_depend_on_its_emulator():
    graph = imports()
    users = sorted(m for m in graph if not m.startswith("ivr.sim")
                   and any(t.startswith("ivr.sim") for t in graph[m]))
    assert users == ["ivr.cli"]  # only to offer the `carrier` and `call` commands


@pytest.mark.live  # starts a process
def test_a_small_module_loads_without_the_app():
    """`import ivr.chunking` (a tool, a benchmark, the emulator) loads neither Flask, the
    database nor Twilio's SDK: the package's face builds nothing."""
    probe = ("import sys, ivr.chunking, ivr.media.endpointing, ivr.notify.texts; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'flask', 'sqlalchemy', 'twilio', 'apscheduler', 'openai', 'uvicorn'}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=ROOT.parent, check=True).stdout.strip()
    assert out == "[]"
