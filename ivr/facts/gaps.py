"""The owner's inbox: questions the line could not answer, grouped by their words, and answers."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache

from sqlalchemy import delete, func, select, text, update

from ..eventlog import EventLog
from ..schema import capped, gap_groups, gaps, inbox_revision
from ..store import Store
from .words import content_words

# what a caller says that asks nothing: hesitations, yes and no, a greeting, English fillers
FILLERS = frozenset("""
אה אהה אההה אמ אממ אממממ הממ הממממ ממ מממ אוקיי אוקי אוקיי נו כנ לא רגע הלו בסדר יאללה
וואלה סבבה נכונ ברור אוי אח יופי
uh um uhm hmm hm mm ok okay yes no hello hi yeah
""".split())
# verbs any question about a service has ("do you do…", "do you take…"): no topic of their own
GENERIC = frozenset("עושימ עושה עושות מקבלימ מקבל מציעימ מציע נותנימ נותנ יש שאלתי".split())
MIN_SIMILARITY = 0.6  # a question joins the group holding one this like it (Dice): more than
# half the words of both; one word of two each in common ("הנחה לסטודנטים/לחיילים") is not
RECENT_GROUPS = 500  # a new question is compared with the groups asked most recently
RECENT_QUESTIONS = 5000  # and with their questions, newest first, up to this many
LOCK_KEY = 0x1F5A7F  # PostgreSQL advisory lock: instances group one question at a time
EXAMPLES = 5  # questions shown per group
CALL_LINKS = 10  # calls linked per group
TITLE_QUESTIONS = 10  # a group's questions that title its answer's passage


@lru_cache(maxsize=RECENT_QUESTIONS)
def question_words(question: str) -> tuple[frozenset[str], ...]:
    """The words of `question` that say what it asks, each as the keys it is matched by: its
    folded forms (words.py: prefixes ו/ה/ב/ל/מ/ש/כ and plural endings off) and each of four
    letters or more without its last letter (construct state: החלקה/החלקת, שוברי/שובר); no
    fillers, generic verbs, digits. Kept for the recent questions: a new one meets them all."""
    return tuple(frozenset(forms) | {f[:-1] for f in forms if len(f) >= 4}
                 for forms in content_words(question)
                 if not (forms[0] in FILLERS or forms[0] in GENERIC or forms[0].isdigit()
                         or len(forms[0]) < 2))


def is_question(text_said: str) -> bool:
    """Whether the words ask something the owner could answer: not a lone "כן", "אה", a
    noise, a number dictated."""
    return bool(question_words(text_said))


def similarity(a: tuple[frozenset[str], ...], b: tuple[frozenset[str], ...]) -> float:
    """Dice over words: the words of each that the other has, of all the words of both."""
    if not a or not b:
        return 0.0
    held = sum(any(x & y for y in b) for x in a) + sum(any(y & x for x in a) for y in b)
    return held / (len(a) + len(b))


@dataclass
class Group:
    """One question as the owner sees it: how many calls asked it, in which words, why the line
    could not answer, and the owner's answer ("" none yet)."""

    id: int
    question: str
    why: str
    first_at: float
    last_at: float
    answer: str
    answered_at: float | None
    calls: int = 0
    examples: list[str] = field(default_factory=list)  # the callers' words, newest first
    call_sids: list[str] = field(default_factory=list)  # the calls, newest first


class Inbox:
    """The gaps in the line's database, written through the store (one write transaction at a
    time in a process; on PostgreSQL an advisory lock, so two instances never open two groups
    for one question). A call's asking is a row whose (group, call) is unique: asked again in
    the same call, on any instance, it adds nothing."""

    def __init__(self, store: Store, events: EventLog | None = None,
                 min_similarity: float = MIN_SIMILARITY):
        self.store, self.events, self.min_similarity = store, events, min_similarity

    def record(self, call_sid: str, question: str, why: str = "") -> int | None:
        """Keep the caller's question in the group of the most similar one asked before (a new
        group if none is similar enough); the group's id, or None when nothing was added (not
        a question, or this call already asked it)."""
        words = question_words(question)
        if not words:
            return None
        now = time.time()
        row = capped(gaps, {"call_sid": call_sid, "question": " ".join(question.split()),
                            "why": why, "created_at": now})
        with self.store.writing() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
            group_id = self._closest(conn, words)
            if group_id is None:
                group_id = conn.execute(gap_groups.insert().values(**capped(gap_groups, {
                    "question": row["question"], "why": why, "first_at": now, "last_at": now,
                    "answer": ""})).returning(gap_groups.c.id)).scalar_one()
            added = conn.execute(
                self.store.insert(gaps).values(group_id=group_id, **row)
                .on_conflict_do_nothing(index_elements=[gaps.c.group_id, gaps.c.call_sid])
                .returning(gaps.c.id)).first()
            if added:
                conn.execute(update(gap_groups).where(gap_groups.c.id == group_id)
                             .values(**capped(gap_groups, {"last_at": now, "why": why})))
        if added and self.events is not None:
            self.events.emit("GAP", call_sid, group=group_id, why=why)
        return group_id if added else None

    def _closest(self, conn, words: tuple[frozenset[str], ...]) -> int | None:
        """The recent group holding the question most like `words`, if like enough."""
        recent = (select(gap_groups.c.id).order_by(gap_groups.c.last_at.desc())
                  .limit(RECENT_GROUPS).scalar_subquery())
        newest = func.max(gaps.c.created_at)
        asked = conn.execute(select(gaps.c.group_id, gaps.c.question)
                             .where(gaps.c.group_id.in_(recent))
                             .group_by(gaps.c.group_id, gaps.c.question)
                             .order_by(newest.desc()).limit(RECENT_QUESTIONS)).all()
        best, best_score = None, self.min_similarity
        for group_id, question in asked:
            score = similarity(words, question_words(question))
            if score > best_score or (score == best_score and best is None):
                best, best_score = group_id, score
        return best

    def groups(self, limit: int = 200, only: list[int] | None = None) -> list[Group]:
        """The groups (`only` these), the most recently asked first, with their calls and
        words."""
        query = select(gap_groups).order_by(gap_groups.c.last_at.desc(), gap_groups.c.id.desc())
        if only is not None:
            query = query.where(gap_groups.c.id.in_(only))
        with self.store.engine.connect() as conn:
            rows = conn.execute(query.limit(limit)).mappings().all()
            found = {r["id"]: Group(r["id"], r["question"] or "", r["why"] or "",
                                    r["first_at"] or 0.0, r["last_at"] or 0.0,
                                    r["answer"] or "", r["answered_at"]) for r in rows}
            asked = conn.execute(select(gaps.c.group_id, gaps.c.call_sid, gaps.c.question)
                                 .where(gaps.c.group_id.in_(list(found)))
                                 .order_by(gaps.c.created_at.desc(), gaps.c.id.desc())).all()
        for group_id, call_sid, question in asked:
            group = found[group_id]
            group.calls += 1
            if question not in group.examples and len(group.examples) < EXAMPLES:
                group.examples.append(question)
            if len(group.call_sids) < CALL_LINKS:
                group.call_sids.append(call_sid)
        return list(found.values())

    def group(self, group_id: int) -> Group | None:
        found = self.groups(limit=1, only=[group_id])
        return found[0] if found else None

    def answer(self, group_id: int, answer: str) -> bool:
        """The owner's answer to the group (empty: none): used from the next look at the facts,
        on every instance. Whether the group exists."""
        answer = " ".join(answer.split())
        values = capped(gap_groups, {"answer": answer,
                                     "answered_at": time.time() if answer else None})
        with self.store.writing() as conn:
            changed = conn.execute(update(gap_groups).where(gap_groups.c.id == group_id)
                                   .values(**values)).rowcount == 1
            if changed:
                self._bump(conn)
        return changed

    def delete(self, group_id: int) -> bool:
        """Forget the group and its calls' askings (not a real question). Whether it existed."""
        with self.store.writing() as conn:
            conn.execute(delete(gaps).where(gaps.c.group_id == group_id))
            gone = conn.execute(delete(gap_groups).where(gap_groups.c.id == group_id)
                                ).rowcount == 1
            if gone:
                self._bump(conn)
        return gone

    def _bump(self, conn) -> None:
        """Move the inbox's revision on: every instance reads the answers again."""
        conn.execute(self.store.insert(inbox_revision).values(id=1, revision=1)
                     .on_conflict_do_update(index_elements=[inbox_revision.c.id],
                                            set_={"revision": inbox_revision.c.revision + 1}))

    def asked_between(self, since: float, until: float) -> list[tuple[Group, int]]:
        """The unanswered groups asked in [since, until), each with how many calls asked it
        then, the most asked first (the daily digest)."""
        with self.store.engine.connect() as conn:
            counts = dict(conn.execute(
                select(gaps.c.group_id, func.count())
                .where(gaps.c.created_at >= since, gaps.c.created_at < until)
                .group_by(gaps.c.group_id)).all())
        found = [(g, counts[g.id]) for g in self.groups(len(counts), only=list(counts))
                 if not g.answer]
        return sorted(found, key=lambda pair: (-pair[1], -pair[0].last_at))

    def purge_before(self, ts: float) -> int:
        """Delete the askings before `ts` (RETENTION_DAYS) and the unanswered groups left with
        none; an answered group stays, it is part of the facts. How many askings."""
        with self.store.writing() as conn:
            removed = conn.execute(delete(gaps).where(gaps.c.created_at < ts)).rowcount
            asked = select(gaps.c.id).where(gaps.c.group_id == gap_groups.c.id).exists()
            conn.execute(delete(gap_groups).where(~asked, gap_groups.c.answer == ""))
        return removed
