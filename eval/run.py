"""`python -m eval.run [--engine scripted|openai|all] [--only NAME]`: every scenario in
eval/scenarios rung as a whole call through the emulator on each engine it names; a table of
results, eval/results/eval.json, exit status 1 on any failure."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ivr.engines.scripted import normalize
from ivr.facts.facts import LiveFacts
from ivr.sim.script import CallerScript

from .checks import Call, check_names, first_audio, run_checks
from .judge import Judge
from .lines import ENGINES, Line, local_time, start_line

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios"
RESULTS = HERE / "results"
SCENARIO_KEYS = {"engines", "hours", "now", "settings", "speed", "appointments", "checks",
                 "about"}
RECORD_WAIT_SEC = 30.0  # the line records a turn once its reply is whole (maybe after the call)


@dataclass
class Scenario:
    """One scenario: the caller's script and what must (not) happen, on which engines."""

    name: str
    path: Path
    script: dict
    engines: list[str]
    hours: str = "shipped"
    now: str | None = None
    settings: dict = field(default_factory=dict)
    speed: float = 5.0
    appointments: list[dict] = field(default_factory=list)
    checks: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Scenario:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        engines = data.get("engines", list(ENGINES))
        engines = [engines] if isinstance(engines, str) else list(engines)
        if not set(engines) <= set(ENGINES):
            raise ValueError(f"{path.name}: engines {engines}: expected {', '.join(ENGINES)}")
        check_names(data.get("checks") or {})
        script = {k: v for k, v in data.items() if k not in SCENARIO_KEYS}
        CallerScript.from_dict(script)  # a broken caller script fails at load, named
        return cls(name=str(data.get("name", path.stem)), path=path, script=script,
                   engines=engines, hours=data.get("hours", "shipped"), now=data.get("now"),
                   settings=data.get("settings") or {}, speed=float(data.get("speed", 5.0)),
                   appointments=data.get("appointments") or [], checks=data.get("checks") or {})


def load_all(only: str | None = None) -> list[Scenario]:
    scenarios = [Scenario.load(p) for p in sorted(SCENARIOS.glob("*.yaml"))]
    if only:
        scenarios = [s for s in scenarios if only in (s.name, s.path.stem)]
        if not scenarios:
            raise SystemExit(f"no scenario named {only!r}")
    return scenarios


def checks_for(checks: dict, engine: str) -> dict:
    """The checks on `engine`: a check written per engine ({scripted: …, openai: …}) takes its
    engine's value, and is left out where its engine has none."""
    chosen = {}
    for name, value in checks.items():
        if isinstance(value, dict) and value and set(value) <= set(ENGINES):
            if engine in value:
                chosen[name] = value[engine]
        else:
            chosen[name] = value
    return chosen


def caller_script(scenario: Scenario) -> CallerScript:
    """The caller's script, its `expect` words normalised as the line's words are."""
    script = CallerScript.from_dict(scenario.script)
    for step in script.steps:
        if step.options.get("expect"):
            step.options["expect"] = [normalize(w) for w in step.options["expect"]]
    return script


def book_before(line: Line, scenario: Scenario) -> None:
    """The appointments the scenario starts with (another caller's, or this caller's own)."""
    desk = line.runtime.desk
    for item in scenario.appointments:
        outcome = desk.book(desk.service(item.get("service", "תספורת")), local_time(item["at"]),
                            str(item.get("caller", "+972501112233")), name=item.get("name", ""))
        assert outcome.appointment is not None, f"{scenario.name}: cannot book {item}: {outcome}"


def records(line: Line, call_sid: str, expected: int) -> tuple[list[dict], list[str]]:
    """The call's turns and the line's sentences, once `expected` turns with words are kept
    (or RECORD_WAIT_SEC passed: a line that lost a turn has fewer)."""
    deadline = time.monotonic() + RECORD_WAIT_SEC
    while True:
        turns = [t for t in line.store.turns(call_sid) if (t["user_text"] or "").strip()]
        call = line.store.get_call(call_sid) or {}
        if (len(turns) >= expected and call.get("ended")) or time.monotonic() > deadline:
            said = [m["text"] for m in line.store.history(call_sid) if m["role"] == "assistant"]
            return turns, said
        time.sleep(0.05)


def facts_text(line: Line) -> str:
    """The texts of the facts the line answers from (FACTS_FILE, default the shipped one)."""
    facts = LiveFacts.from_settings(line.runtime.settings).current()
    return "\n".join(p.text for p in facts.passages)


def ring(scenario: Scenario, engine: str, judge: Judge) -> dict:
    """One scenario on one engine: its line started, the call rung, checked, the line stopped."""
    started = time.monotonic()
    line = start_line(engine, scenario.hours, scenario.now, scenario.settings, scenario.speed)
    try:
        book_before(line, scenario)
        script = caller_script(scenario)
        result = line.carrier.place_call(script)
        spoken = sum(s.action in ("say", "barge_in", "dtmf") and not s.opt("hang_up_after")
                     for s in script.steps)
        turns, said = records(line, result.call_sid, spoken)
        desk = line.runtime.desk
        call = Call(result, script, said, [normalize(t["reply_text"] or "") for t in turns],
                    line.store.leads(), desk.of_caller(script.from_number) if desk else [],
                    line.flow, line.runtime.settings.owner_phone, facts_text(line),
                    [g for g in line.runtime.inbox.groups() if result.call_sid in g.call_sids])
        failures = run_checks(call, checks_for(scenario.checks, engine))
        waits = first_audio(result)
        conversation = [(who, text) for t in turns
                        for who, text in (("caller", t["user_text"]), ("line", t["reply_text"]))]
        verdict = judge.grade(f"{line.flow}\n\n{call.facts}", conversation) \
            if judge.on else None  # against the flow and the business's facts
    finally:
        line.close()
    return {"scenario": scenario.name, "engine": engine, "passed": not failures,
            "failures": failures, "first_audio_s": max(waits) if waits else None,
            "first_audio_all_s": waits, "speed": scenario.speed, "turns": len(turns),
            "call_seconds": result.duration, "real_seconds": round(time.monotonic() - started, 1),
            "conversation": conversation, "judge": verdict,
            "timeline": result.timeline_text().splitlines()}


def table(rows: list[dict]) -> str:
    """The results, a row per scenario × engine."""
    lines = [f"{'scenario':<34} {'engine':<9} {'result':<6} {'first audio':>16}  failing check",
             "-" * 100]
    for row in rows:
        audio = "—" if row["first_audio_s"] is None else \
            f"{row['first_audio_s']:.2f} s (×{row['speed']:g})"
        why = row["failures"][0] if row["failures"] else ""
        if len(row["failures"]) > 1:
            why += f" (+{len(row['failures']) - 1} more)"
        lines.append(f"{row['scenario']:<34} {row['engine']:<9} "
                     f"{'pass' if row['passed'] else 'FAIL':<6} {audio:>16}  {why}")
    return "\n".join(lines)


def keep_line_log(path: Path) -> None:
    """The lines' own log (one `KIND key=value` line per event) in a file beside the results,
    not on the terminal: the table is what the run prints."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger("ivr")
    for old in [h for h in root.handlers if getattr(h, "eval_log", False)]:
        root.removeHandler(old)
        old.close()
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.eval_log = True
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    root.propagate = False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.run", description=__doc__)
    parser.add_argument("--engine", choices=[*ENGINES, "all"], default="all")
    parser.add_argument("--only", help="run one scenario (its name or file name)")
    parser.add_argument("--out", default=str(RESULTS / "eval.json"), help="the JSON result file")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    keep_line_log(Path(args.out).with_suffix(".log"))
    engines = list(ENGINES) if args.engine == "all" else [args.engine]
    judge = Judge()
    print(f"judge: {judge.state}", flush=True)
    rows, started = [], time.monotonic()
    for scenario in load_all(args.only):
        for engine in (e for e in scenario.engines if e in engines):
            row = ring(scenario, engine, judge)
            rows.append(row)
            print(table([row]).splitlines()[-1], flush=True)
    print("\n" + table(rows))
    failed = sum(not r["passed"] for r in rows)
    total = round(time.monotonic() - started, 1)
    print(f"\n{len(rows) - failed} of {len(rows)} passed in {total} s; judge: {judge.state}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "judge": judge.state, "seconds": total, "results": rows},
                              indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"results: {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
