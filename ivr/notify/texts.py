"""The owner's notification texts (Hebrew): an e-mail's subject and body, a short SMS, a digest."""

from __future__ import annotations

import dataclasses
import datetime
import unicodedata
import zoneinfo
from dataclasses import dataclass

SMS_REASON_CHARS = 50  # the SMS keeps the reason and the name short: the link has the rest
SMS_NAME_CHARS = 24


@dataclass(frozen=True)
class Notice:
    """What the owner is told about one call (name, phone and reason empty: no message left)."""

    caller: str  # the number that called
    name: str
    phone: str  # the number to call back, as the caller gave it
    reason: str
    at: float  # when the call started (epoch seconds)
    summary: str  # two lines
    link: str  # the call in the inspector
    incomplete: bool = False  # the caller hung up before the message's last answer

    def __post_init__(self):
        for field in ("caller", "name", "phone", "reason"):  # what the caller said or sent
            object.__setattr__(self, field, one_line(getattr(self, field)))

    def with_summary(self, summary: str) -> Notice:
        return dataclasses.replace(self, summary=summary)

    @property
    def left_message(self) -> bool:
        return bool(self.name or self.phone or self.reason)

    @property
    def number(self) -> str:
        """The number to call back: the one given, else the one that called."""
        return self.phone or self.caller


def local_time(ts: float, tz: str) -> str:
    """`ts` in the time zone, as 23/11/2026 14:05."""
    moment = datetime.datetime.fromtimestamp(ts, zoneinfo.ZoneInfo(tz))
    return moment.strftime("%d/%m/%Y %H:%M")


def subject(notice: Notice) -> str:
    """The e-mail's subject: who, and the number to call back."""
    if notice.left_message:
        return f"{message_kind(notice)} מ{notice.name or 'מתקשר'} ({notice.number})"
    return f"שיחה מ-{notice.caller or 'מספר חסוי'}"


def message_kind(notice: Notice) -> str:
    """What the caller left: a new message, or one they hung up on before its end."""
    return "הודעה חלקית" if notice.incomplete else "הודעה חדשה"


def email_body(notice: Notice, tz: str) -> str:
    """The e-mail: the call's details, the summary and the link to the call."""
    first = "התקבלה שיחה בקו."
    if notice.left_message:
        first = (f"התקבלה {message_kind(notice)} בקו"
                 + (": המתקשר ניתק לפני שסיים להשאיר אותה." if notice.incomplete else "."))
    lines = [first, "",
             f"מספר המתקשר: {notice.caller or 'חסוי'}"]
    if notice.left_message:
        lines += [f"שם: {notice.name or '—'}", f"טלפון לחזרה: {notice.number or '—'}",
                  f"סיבת הפנייה: {notice.reason or '—'}"]
    lines += [f"שעה: {local_time(notice.at, tz)}", "", "סיכום:", notice.summary, "",
              f"השיחה ביומן: {notice.link}"]
    return "\n".join(lines) + "\n"


def sms_body(notice: Notice, tz: str) -> str:
    """The SMS: who, the number, the reason cut short, when, and the link."""
    if notice.left_message:
        reason = short(notice.reason, SMS_REASON_CHARS)
        kind = "הודעה חלקית" if notice.incomplete else "הודעה"
        head = f"{kind} מ{short(notice.name, SMS_NAME_CHARS) or 'מתקשר'} {short(notice.number, 20)}"
        head += f": {reason}" if reason else ""
    else:
        first = notice.summary.splitlines()[0] if notice.summary else ""
        topic = short(one_line(first), SMS_REASON_CHARS)
        head = f"שיחה מ-{notice.caller or 'מספר חסוי'}: {topic}"
    return f"{head}\n{local_time(notice.at, tz)}\n{notice.link}"


DIGEST_SMS_QUESTIONS = 3  # the SMS names the most asked ones; the link has them all
DIGEST_QUESTION_CHARS = 60


@dataclass(frozen=True)
class Asked:
    """A question the line could not answer, in the digest: its words, how many calls asked it
    in the day, in which other words."""

    question: str
    calls: int
    examples: tuple[str, ...] = ()


def digest_subject(asked: list[Asked]) -> str:
    if len(asked) == 1:
        return "שאלה חדשה שהקו לא ידע לענות עליה"
    return f"{len(asked)} שאלות חדשות שהקו לא ידע לענות עליהן"


def _times(calls: int) -> str:
    return "שיחה אחת" if calls == 1 else f"{calls} שיחות"


def digest_email(asked: list[Asked], link: str) -> str:
    """The e-mail: each question (the most asked first), how many calls asked it, its other
    words, and the inbox page where the owner answers."""
    lines = [f"{digest_subject(asked)}:", ""]
    for item in asked:
        lines.append(f"• {one_line(item.question)} ({_times(item.calls)})")
        lines += [f"  גם: {one_line(other)}" for other in item.examples
                  if one_line(other) != one_line(item.question)]
    lines += ["", "כתבו תשובה, והקו יענה בה מהשיחה הבאה:", link]
    return "\n".join(lines) + "\n"


def digest_sms(asked: list[Asked], link: str) -> str:
    """The SMS: how many, the most asked questions cut short, the inbox page."""
    named = [f"• {short(one_line(a.question), DIGEST_QUESTION_CHARS)} ({_times(a.calls)})"
             for a in asked[:DIGEST_SMS_QUESTIONS]]
    more = len(asked) - DIGEST_SMS_QUESTIONS
    tail = [f"ועוד {more}"] if more > 0 else []
    return "\n".join([f"{digest_subject(asked)}:", *named, *tail, link])


def short(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with "…"."""
    return text if len(text) <= limit else text[:limit].rstrip() + "…"


BREAKS = {"Zl", "Zp"}  # line and paragraph separators: a space
DROPPED = {"Cc", "Cf", "Cs", "Co"}  # controls, format characters (bidi overrides), surrogates


def one_line(text: str) -> str:
    """Caller text on one line for a header or an SMS: every line break or other white space a
    single space, control and Unicode format characters removed."""
    kept = []
    for char in str(text or ""):
        kind = unicodedata.category(char)
        if char.isspace() or kind in BREAKS:
            kept.append(" ")
        elif kind not in DROPPED:
            kept.append(char)
    return " ".join("".join(kept).split())
