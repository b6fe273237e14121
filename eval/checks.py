"""The rule checks of a scenario over one call: what the line said (normalised Hebrew), figures
it must not invent, the message or booking it kept, a transfer, a hang-up, first-audio latency
in emulator seconds, and how many turns it answered. Each failing check says why in one line."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from ivr.engines.scripted import normalize
from ivr.sim.result import CallResult
from ivr.sim.script import CallerScript, unmet_expectations, voice_ulaw

FIGURE = re.compile(r"\d+")
KNOWN = {"say", "not_say", "figures", "lead", "booking", "transfer", "hangup",
         "first_audio_max", "turns", "heard_min", "gap"}


@dataclass
class Call:
    """What one call left behind: the emulator's result and the line's own records."""

    result: CallResult
    script: CallerScript
    said: list[str]  # every sentence the line said, in order (its history)
    replies: list[str]  # its answers to the caller's turns (the turns it heard words in)
    leads: list[dict]
    booked: list  # the caller's coming appointments after the call
    flow: str  # the flow's text the line answered from
    owner: str
    facts: str = ""  # the facts' passages the line answered from, their texts
    gaps: list = field(default_factory=list)  # the inbox's groups this call asked (facts.gaps)
    failures: list[str] = field(default_factory=list)


def check_names(checks: dict) -> None:
    unknown = set(checks) - KNOWN
    if unknown:
        raise ValueError(f"checks: unknown {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(sorted(KNOWN))}")


def flow_figures(flow: str) -> set[int]:
    """Every number the flow's texts and settings hold (its comments are not facts)."""
    return {int(n) for n in FIGURE.findall(yaml.safe_dump(yaml.safe_load(flow),
                                                          allow_unicode=True))}


def first_audio(result: CallResult) -> list[float]:
    """For each thing the caller said (to its last word) or keyed, how long in emulator
    seconds until the line's next audio began; acts no audio followed are left out."""
    acts = [s["t"] + len(voice_ulaw(s["text"])) / 8000 for s in result.said]
    acts += [e["t"] for e in result.timeline
             if e["who"] == "caller" and e["text"].startswith("presses ")]
    waits = []
    for end in sorted(acts):
        after = [h["t"] for h in result.heard if h["t"] >= end - 0.02]
        if after:
            waits.append(round(max(0.0, min(after) - end), 2))
    return waits


def hung_up_by(result: CallResult) -> list[str]:
    return [e["who"] for e in result.timeline if e["text"] == "hangs up"]


def words_check(call: Call, checks: dict) -> list[str]:
    spoken = normalize(" ".join(call.said))
    failed = []
    for item in checks.get("say") or []:
        options = [item] if isinstance(item, str) else list(item)
        if not any(normalize(o) in spoken for o in options):
            failed.append(f"never said {' or '.join(repr(o) for o in options)}")
    for word in checks.get("not_say") or []:
        if normalize(word) in spoken:
            failed.append(f"said {word!r}")
    if checks.get("figures", True):
        known = flow_figures(call.flow) | {int(n) for n in FIGURE.findall(call.facts)}
        invented = sorted({n for n in FIGURE.findall(" ".join(call.said)) if int(n) not in known})
        if invented:
            failed.append(f"said figures not in the facts: {', '.join(invented)}")
    return failed


def kept_check(call: Call, checks: dict) -> list[str]:
    failed = []
    if "lead" in checks:
        want = checks["lead"]
        if want in (None, "none", False):
            if call.leads:
                failed.append(f"a message was kept: {call.leads[0]}")
        elif not any(all(str(lead.get(k)) == str(v) for k, v in (want or {}).items())
                     for lead in call.leads):
            kept = [{k: lead[k] for k in ("name", "phone", "reason")} for lead in call.leads]
            failed.append(f"no message with {want}; kept: {kept}")
    if "gap" in checks:
        want = checks["gap"]
        whys = [g.why for g in call.gaps]
        if want in (None, "none", False):
            if call.gaps:
                failed.append(f"a gap was recorded: {[g.question for g in call.gaps]}")
        elif len(call.gaps) != 1:
            failed.append(f"{len(call.gaps)} gaps recorded for the call, not one")
        elif isinstance(want, str) and want not in whys:
            failed.append(f"the gap was recorded as {whys[0]!r}, not {want!r}")
    if "booking" in checks:
        want = checks["booking"]
        held = [a.start.strftime("%Y-%m-%d %H:%M") for a in call.booked]
        if want in (None, "none", False):
            if held:
                failed.append(f"the caller has an appointment: {held}")
        elif str(want) not in held:
            failed.append(f"no appointment at {want}; the caller's: {held}")
    return failed


def call_check(call: Call, checks: dict) -> list[str]:
    result, failed = call.result, []
    if result.error_codes:
        failed.append(f"Twilio error codes {result.error_codes}")
    if "transfer" in checks:
        dialled = [d["number"] for d in result.dials]
        if checks["transfer"] and call.owner not in dialled:
            failed.append("no <Dial> to the owner")
        if not checks["transfer"] and dialled:
            failed.append(f"dialled {dialled}")
    if "hangup" in checks and checks["hangup"] not in hung_up_by(result):
        failed.append(f"not hung up by the {checks['hangup']} (by {hung_up_by(result)})")
    waits = first_audio(result)
    if "first_audio_max" in checks and waits and max(waits) > checks["first_audio_max"]:
        failed.append(f"first audio {max(waits):.2f} s > {checks['first_audio_max']} s")
    if "heard_min" in checks and len(result.heard) < checks["heard_min"]:
        failed.append(f"the caller heard the line {len(result.heard)} times, "
                      f"not at least {checks['heard_min']}")
    if "turns" in checks and len(call.replies) != checks["turns"]:
        failed.append(f"{len(call.replies)} turns answered, not {checks['turns']}")
    failed += [f"expect: {u}" for u in unmet_expectations(call.script, call.replies)]
    return failed


def run_checks(call: Call, checks: dict) -> list[str]:
    """Every failing check of `checks` on `call`, one line each ([]: it passed)."""
    check_names(checks)
    return words_check(call, checks) + kept_check(call, checks) + call_check(call, checks)
