"""The day and time a caller means, from their Hebrew words: by code, a question when unclear.

`resolve(text, now, tz)` reads what ASR wrote (no niqqud, digits or words, prefixes ו/ב/ל/ה/מ/ש
glued on) against an injected `now` in the line's `TIMEZONE`, and returns a `When`: a day or a
range of days, a time or a part of the day (a window), and — when the words are ambiguous,
incomplete or in the past — `ask`, a Hebrew question for the caller with the choices it offers;
never a guess.
`refine(asked, answer, now, tz)` reads the caller's answer to that question.

What libraries do here, and why the rest is written by hand:
- `hdate` (Israel, not the diaspora) gives the holidays: the days of Pesach, Sukkot, Chol HaMoed,
  the eves, Rosh Hashana, Shavuot, Hanukkah, Purim.
- `dateparser` decides whether a word is a month name (its Hebrew data knows ינואר…דצמבר, with the
  ב/ל prefixes and the spellings מרס/מארס/אוג). Probed on its own it also gets היום, מחר, "יום
  שלישי", "בעוד 3 ימים", "15.1" and "15 בינואר" right, but it misses מחרתיים, "בשלישי", "ביום ג'",
  any "הבא"/"הזה", "בעוד שלושה ימים" (numbers in words), "שבוע הבא", "חמישה עשר בינואר", every time
  in words ("בשמונה וחצי", "רבע לעשר"), and gets some wrong: "מחר ב 14:30" → the 1st of the month,
  "מחר בשמונה" → 9:00, "15.1.27" → 2127, and a bare weekday that is today → a week later with no
  question. So phrases are found here, and it only names months.
- `ivr/speakable.py` (its normaliser) says dates and times in words for `spoken_slot` and the
  questions.

The rules a person would ask about:
- An hour with no part of the day has two readings, h and h+12; only those between 07:00 and 21:00
  are appointment hours. One left → it ("בשלוש" → 15:00, "בעשר" → 10:00, "בשש" → 18:00 — the Israeli
  convention for 1–6); two left (7, 8, 9 o'clock) → ask "בשמונה בבוקר או בערב?". On today, a reading
  already past is dropped.
- A bare weekday is the next one; today's weekday asks "today or next week?". "הזה" is the coming
  one (today included), "הקרוב" the coming one after today, "הבא" the one in next week, and asks
  when the coming one is still this week ("שלישי הבא" said on a Sunday means either).
- A day and month with no year that has passed is next year's; "ה-15 לחודש" after the 15th is next
  month's; `matched` says so. A date with a year in the past, אתמול and שלשום ask.
- Weeks run Sunday to Saturday; "סוף השבוע" is Friday and Saturday.
- "אחרי החג" is the week after the holiday under way or the next one (Rosh Hashana, Yom Kippur,
  Sukkot with Shemini Atzeret, Pesach, Shavuot); "אחרי החגים" in the autumn is after Sukkot;
  "לפני X" is the week before X's first day; "ערב X" is the day before it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
import zoneinfo

from ivr.booking.hebrew_numbers import DUALS, NUMBER, ORDINAL, number
from ivr.speakable import speakable

TIMEZONE = "Asia/Jerusalem"
WEEKDAYS = ("ראשון", "שני", "שלישי", "רביעי", "חמישי", "שישי", "שבת")  # Sunday first
LETTERS = "אבגדהוש"  # "יום ג'" is Tuesday, "יום ש'" Saturday
EARLIEST, LATEST = dt.time(7, 0), dt.time(21, 0)  # a bare hour's readings kept for appointments
WINDOWS = {
    "morning": (dt.time(7, 0), dt.time(12, 0)),
    "noon": (dt.time(12, 0), dt.time(14, 0)),
    "afternoon": (dt.time(14, 0), dt.time(18, 0)),
    "evening": (dt.time(18, 0), dt.time(22, 0)),
    "night": (dt.time(21, 0), dt.time(23, 59)),
}
PART_WORDS = {"morning": "בבוקר", "noon": "בצהריים", "afternoon": "אחרי הצהריים",
              "evening": "בערב", "night": "בלילה"}
PAST = "התאריך הזה כבר עבר. לאיזה יום לקבוע?"

S, E = r"(?<!\S)", r"(?!\S)"  # a phrase starts and ends at word edges
P = r"[ובלהמש]{0,3}"  # the letters ASR glues to a word: ו, ב, ל, ה, מ, ש (at most three)


@dataclasses.dataclass(frozen=True)
class When:
    """What a caller's words say about when: clear parts set, `ask` non-empty when a question is
    needed first (then `day_choices` / `time_choices` hold what it offers)."""

    day: dt.date | None = None
    days: tuple[dt.date, dt.date] | None = None  # a range, both ends included
    time: dt.time | None = None
    window: tuple[dt.time, dt.time] | None = None  # a part of the day
    ask: str = ""
    matched: str = ""  # the words understood, and what was assumed ("next year")
    day_choices: tuple[dt.date, ...] = ()
    time_choices: tuple[dt.time, ...] = ()

    def start(self, tz: str = TIMEZONE) -> dt.datetime | None:
        """The day and time as an aware datetime in `tz` (a time skipped by a clock change moves
        forward, as zoneinfo's fold=0 does); None without both."""
        if self.day is None or self.time is None:
            return None
        local = dt.datetime.combine(self.day, self.time, zoneinfo.ZoneInfo(tz))
        return local.astimezone(dt.UTC).astimezone(zoneinfo.ZoneInfo(tz))


# ---- reading the text -------------------------------------------------------------------------

def _normal(text: str) -> str:
    """One spelling: no niqqud, ASCII quotes, "ה-15" → "ה15", "ב 14:30" → "ב14:30", no punctuation
    except inside numbers."""
    text = text.replace("\u05be", "-").replace("׳", "'").replace("״", '"')
    text = re.sub("[\u2018\u2019`]", "'", re.sub("[\u201c\u201d]", '"', text))
    text = re.sub("[\u0591-\u05c7]", "", text)
    text = re.sub(r"(?<!\d)[.,!?;:]|[.,!?;:](?!\d)", " ", text)
    text = re.sub(rf"{S}([ובלהמש]{{1,3}})-", r"\1", text)
    text = re.sub(r"(?<=[א-ת])-(?=[א-ת])", " ", text)
    text = re.sub(rf"{S}([ובלה]{{1,2}}) (?=\d)", r"\1", text)
    return " ".join(text.split())


class _Text:
    """The caller's words; each phrase understood is blanked so that no other rule reads it."""

    def __init__(self, text: str) -> None:
        self.s = _normal(text)
        self.understood: list[tuple[int, str]] = []

    def take(self, pattern: re.Pattern, accept=lambda m: True) -> list[re.Match]:
        found, pos = [], 0
        while (m := pattern.search(self.s, pos)) is not None:
            if not accept(m):
                pos = m.start() + 1
                continue
            found.append(m)
            pos = m.end()
        for m in found:
            self.understood.append((m.start(), m.group(0)))
        for m in found:
            self.s = self.s[:m.start()] + " " * (m.end() - m.start()) + self.s[m.end():]
        return found


@functools.lru_cache(maxsize=512)
def month_number(word: str) -> int | None:
    """The month a Hebrew word names ("בינואר" → 1, "למרס" → 3), by dateparser's Hebrew data."""
    import dateparser  # its language data loads on the first word asked about, not at import
    try:
        parsed = dateparser.parse(f"1 {word} 2000", languages=["he"], settings={
            "REQUIRE_PARTS": ["month"], "RELATIVE_BASE": dt.datetime(1990, 6, 6)})
    except Exception:  # noqa: BLE001 - a word it chokes on is not a month
        return None
    if parsed is None or (parsed.year, parsed.day, parsed.hour) != (2000, 1, 0):
        return None
    return parsed.month


# ---- days ---------------------------------------------------------------------------------------

@dataclasses.dataclass
class _Day:
    day: dt.date | None = None
    days: tuple[dt.date, dt.date] | None = None
    ask: str = ""
    choices: tuple[dt.date, ...] = ()
    words: str = ""
    note: str = ""


def _add_months(day: dt.date, months: int) -> dt.date:
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    last = _month_end(year, month).day
    return dt.date(year, month, min(day.day, last))


def _month_end(year: int, month: int) -> dt.date:
    first_next = dt.date(year + month // 12, month % 12 + 1, 1)
    return first_next - dt.timedelta(days=1)


def _week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=(day.weekday() + 1) % 7)  # Sunday


MONTHS = ("ינואר", "פברואר", "מרץ", "אפריל", "מאי", "יוני", "יולי", "אוגוסט", "ספטמבר",
          "אוקטובר", "נובמבר", "דצמבר")  # as the line says them; reading them is dateparser's


def said_date(day: dt.date) -> str:
    """"השבעה עשר בדצמבר" — a date as said, through ivr/speakable.py."""
    return speakable(f"ה-{day.day} ב{MONTHS[day.month - 1]}")

PAST_WORDS = re.compile(rf"{S}{P}(?:אתמול|שלשום){E}")
DAY_WORDS = re.compile(rf"{S}[ובל]{{0,2}}(?P<w>היום|מחרתיים|מחר){E}")
_DAYS_DUALS = "|".join(d for d, (unit, _) in DUALS.items() if unit != "hour")
IN = re.compile(
    rf"{S}ו?ב?עוד\s+(?:(?P<n>\d+|{NUMBER})\s+(?P<unit>ימים|יום|שבועות|שבוע|חודשים|חודש)"
    rf"|(?P<dual>{_DAYS_DUALS})|(?P<one>יום|שבוע|חודש)|(?P<few>כמה|מספר)\s+\S+){E}")
DIGIT_DATE = re.compile(
    rf"{S}{P}(?P<d>\d{{1,2}})[./](?P<m>\d{{1,2}})(?:[./](?P<y>\d{{2}}|\d{{4}}))?{E}")
NAMED_DATE = re.compile(
    rf"{S}{P}(?P<d>\d{{1,2}}|{NUMBER}|ה?(?:{ORDINAL}))\s+(?P<mon>[א-ת]+)(?:\s+(?P<y>\d{{4}}))?{E}")
OF_MONTH = re.compile(
    rf"{S}{P}(?P<d>\d{{1,2}}|{NUMBER}|ה?(?:{ORDINAL}))\s+(?:[בל]חודש|לחודש הזה)"
    rf"(?P<next>\s+הבא)?{E}")
THE_DATE = re.compile(rf"{S}ו?ב?ה(?P<d>\d{{1,2}}){E}")  # "ה-17" alone: a day of the month
WEEKEND = re.compile(rf"{S}{P}(?:סופ\"ש|סופש|סוף\s+ה?שבוע)(?P<next>\s+הבא)?{E}")
WEEK_PHRASE = re.compile(
    rf"{S}{P}(?P<start>תחילת\s+)?(?:(?P<this>השבוע)(?:\s+הזה)?|(?:ה?שבוע)\s+(?P<next>הבא|שאחרי)){E}")
MONTH_PHRASE = re.compile(
    rf"{S}{P}(?:(?P<end>סוף)\s+)?(?:(?P<this>החודש)(?:\s+הזה)?|ה?חודש\s+(?P<next>הבא)){E}")
MONTH_ALONE = re.compile(  # "בינואר", "לקראת חודש מרץ": a month named with ב/ל or "חודש"
    rf"{S}(?:ו?[בל]?חודש\s+(?P<mon>[א-ת]{{3,}})|(?P<pmon>ו?[בל][א-ת]{{3,}})){E}")
_WD = "|".join(WEEKDAYS)
WEEKDAY = re.compile(
    rf"{S}(?:ו?[בל]?יום\s+(?:(?P<name>{_WD})|(?P<letter>[{LETTERS}])'?)|ו?[בל](?P<short>{_WD}))"
    rf"(?:\s+(?P<which>הזה|הקרוב|הבא|בשבוע\s+הבא|של\s+השבוע\s+הבא|שבוע\s+הבא))?{E}")
BARE_WEEKDAY = re.compile(rf"{S}(?P<name>{_WD})(?:\s+(?P<which>הזה|הקרוב|הבא))?{E}")
SHABBAT_OUT = re.compile(rf"{S}ו?ב?(?:מוצאי\s+שבת|מוצ\"ש|מוצש){E}")


def _year_for(d: int, m: int, today: dt.date) -> tuple[dt.date | None, str]:
    for year in (today.year, today.year + 1):
        try:
            day = dt.date(year, m, d)
        except ValueError:
            continue
        if day >= today:
            return day, "" if year == today.year else "בשנה הבאה"
    return None, ""


def _dates(text: _Text, today: dt.date) -> list[_Day]:
    found: list[_Day] = []
    for m in text.take(PAST_WORDS):
        found.append(_Day(ask=PAST, words=m.group(0)))
    for m in text.take(DIGIT_DATE, lambda m: 1 <= int(m["m"]) <= 12):
        found.append(_explicit(int(m["d"]), int(m["m"]), m["y"], today, m.group(0)))
    for m in text.take(NAMED_DATE, lambda m: number(m["d"]) is not None
                       and month_number(m["mon"]) is not None):
        found.append(_explicit(number(m["d"]), month_number(m["mon"]), m["y"], today, m.group(0)))
    for m in text.take(OF_MONTH, lambda m: number(m["d"]) is not None):
        found.append(_of_month(number(m["d"]), today, m.group(0), bool(m["next"])))
    for m in text.take(THE_DATE, lambda m: 1 <= int(m["d"]) <= 31):
        found.append(_of_month(int(m["d"]), today, m.group(0), False))
    return found


def _explicit(d: int, m: int, year: str | None, today: dt.date, words: str) -> _Day:
    if year:
        y = int(year) + (2000 if len(year) == 2 else 0)
        try:
            day = dt.date(y, m, d)
        except ValueError:
            return _Day(ask="אין תאריך כזה. לאיזה יום לקבוע?", words=words)
        return _Day(day=day, words=words) if day >= today else _Day(ask=PAST, words=words)
    day, note = _year_for(d, m, today)
    if day is None:
        return _Day(ask="אין תאריך כזה. לאיזה יום לקבוע?", words=words)
    return _Day(day=day, words=words, note=note)


def _of_month(d: int, today: dt.date, words: str, next_month: bool) -> _Day:
    first = today.replace(day=1)
    for ahead in range(int(next_month), 13):
        month = _add_months(first, ahead)
        if d <= _month_end(month.year, month.month).day and month.replace(day=d) >= today:
            note = "" if ahead == 0 else (
                "בחודש הבא" if ahead == 1 else f"ב{MONTHS[month.month - 1]}")
            if ahead and not next_month:
                note = f"ה-{d} בחודש הזה עבר: {note}"
            return _Day(day=month.replace(day=d), words=words, note=note)
    return _Day(ask="אין תאריך כזה. לאיזה יום לקבוע?", words=words)


def _relative(text: _Text, today: dt.date) -> list[_Day]:
    found = []
    for m in text.take(DAY_WORDS):
        ahead = {"היום": 0, "מחר": 1, "מחרתיים": 2}[m["w"]]
        found.append(_Day(day=today + dt.timedelta(days=ahead), words=m.group(0)))
    return found


def _in(text: _Text, today: dt.date) -> list[_Day]:
    """"בעוד שבועיים", "בעוד 3 ימים": read before the holidays, whose שבועות is also "weeks"."""
    found = []
    for m in text.take(IN):
        if m["few"]:
            found.append(_Day(ask="בעוד כמה ימים בדיוק? או לאיזה יום?", words=m.group(0)))
            continue
        if m["dual"]:
            unit, n = DUALS[m["dual"]]
        elif m["one"]:
            unit, n = {"יום": "day", "שבוע": "week", "חודש": "month"}[m["one"]], 1
        else:
            n = number(m["n"])
            unit = {"י": "day", "ש": "week", "ח": "month"}[m["unit"][0]]
        if unit == "month":
            day = _add_months(today, n)
        else:
            day = today + dt.timedelta(days=n * (7 if unit == "week" else 1))
        found.append(_Day(day=day, words=m.group(0)))
    return found


def _weeks(text: _Text, today: dt.date) -> list[_Day]:
    found = []
    for m in text.take(WEEKEND):
        friday = _week_start(today) + dt.timedelta(days=5 + (7 if m["next"] else 0))
        found.append(_Day(days=(max(friday, today), friday + dt.timedelta(days=1)),
                          words=m.group(0)))
    for m in text.take(SHABBAT_OUT):
        saturday = _week_start(today) + dt.timedelta(days=6)
        found.append(_Day(day=saturday, words=m.group(0)))
    for m in text.take(WEEK_PHRASE):
        sunday = _week_start(today) + dt.timedelta(days=7 * (
            0 if m["this"] else 1 if m["next"] == "הבא" else 2))
        end = sunday + dt.timedelta(days=2 if m["start"] else 6)
        found.append(_Day(days=(max(sunday, today), end), words=m.group(0)))
    for m in text.take(MONTH_PHRASE):
        first = _add_months(today.replace(day=1), 1 if m["next"] else 0)
        last = _month_end(first.year, first.month)
        start = last - dt.timedelta(days=6) if m["end"] else first
        found.append(_Day(days=(max(start, today), last), words=m.group(0)))
    for m in text.take(MONTH_ALONE, lambda m: month_number(m["mon"] or m["pmon"]) is not None):
        month = month_number(m["mon"] or m["pmon"])
        first = dt.date(today.year + (month < today.month), month, 1)
        found.append(_Day(days=(max(first, today), _month_end(first.year, month)),
                          words=m.group(0)))
    return found


def _weekdays(text: _Text) -> list[tuple[int, str | None, str]]:
    """(weekday Sunday=0, "הבא"/"הזה"/"הקרוב"/"next week" or None, words) for each weekday said."""
    found = []

    def counted(m: re.Match) -> bool:  # "לשני אנשים", "בשני שבועות": two of something
        after = text.s[m.end():].split()[:1]
        return m["short"] in ("ראשון", "שני") and bool(after) and after[0].endswith(("ים", "ות"))
    for m in text.take(WEEKDAY, lambda m: not counted(m)):
        if m["letter"]:
            n = LETTERS.index(m["letter"])
        else:
            n = WEEKDAYS.index(m["name"] or m["short"])
        found.append((n, _which(m["which"]), m.group(0)))
    def weekday_meant(m: re.Match) -> bool:  # "שני תורים" is two appointments, not Monday
        return m["name"] not in ("ראשון", "שני") or bool(m["which"]) or not text.s.replace(
            m.group(0), "").strip()
    for m in text.take(BARE_WEEKDAY, weekday_meant):  # "שלישי": an answer to "which day?"
        found.append((WEEKDAYS.index(m["name"]), _which(m["which"]), m.group(0)))
    return found


def _which(word: str | None) -> str | None:
    if word is None:
        return None
    return "שבוע" if "שבוע" in word else word


def _weekday_day(n: int, which: str | None, today: dt.date, words: str) -> _Day:
    name = WEEKDAYS[n]
    ahead = (n - (today.weekday() + 1) % 7) % 7  # 0 when today is that weekday
    coming = today + dt.timedelta(days=ahead)
    next_week = _week_start(today) + dt.timedelta(days=7 + n)
    if which == "שבוע":
        return _Day(day=next_week, words=words)
    if which == "הזה":
        return _Day(day=coming, words=words)
    if which == "הקרוב":
        return _Day(day=coming if ahead else coming + dt.timedelta(days=7), words=words)
    if which == "הבא":
        after_today = coming if ahead else coming + dt.timedelta(days=7)
        if after_today == next_week:
            return _Day(day=next_week, words=words)
        return _Day(ask=f"ביום {name} השבוע, {said_date(after_today)}, או בשבוע הבא, "
                        f"{said_date(next_week)}?", choices=(after_today, next_week), words=words)
    if ahead == 0:
        later = today + dt.timedelta(days=7)
        return _Day(ask=f"היום, או ביום {name} הבא, {said_date(later)}?",
                    choices=(today, later), words=words)
    return _Day(day=coming, words=words)


# ---- holidays -----------------------------------------------------------------------------------

FESTIVALS = {  # hdate's names of each festival's days, in Israel
    "ראש השנה": {"rosh_hashana_i", "rosh_hashana_ii"},
    "יום כיפור": {"yom_kippur"},
    "סוכות": {"sukkot", "hol_hamoed_sukkot", "hoshana_raba", "shmini_atzeret"},
    "פסח": {"pesach", "hol_hamoed_pesach", "pesach_vii"},
    "שבועות": {"shavuot"},
    "חנוכה": {"chanukah"},
    "פורים": {"purim"},
    "שמחת תורה": {"simchat_torah"},
    "חול המועד סוכות": {"hol_hamoed_sukkot", "hoshana_raba"},
    "חול המועד פסח": {"hol_hamoed_pesach"},
}
CHAGIM = ("ראש השנה", "יום כיפור", "סוכות", "פסח", "שבועות")  # "החג"
AUTUMN = ("ראש השנה", "יום כיפור", "סוכות")  # "החגים" in the autumn: until Sukkot's end
HOLIDAY_NAMES = {
    "ראש השנה": "ראש השנה", "ר\"ה": "ראש השנה",
    "יום כיפור": "יום כיפור", "יום כיפורים": "יום כיפור", "יום הכיפורים": "יום כיפור",
    "כיפור": "יום כיפור", "סוכות": "סוכות", "פסח": "פסח", "שבועות": "שבועות",
    "חנוכה": "חנוכה", "פורים": "פורים", "שמחת תורה": "שמחת תורה",
    "חול המועד פסח": "חול המועד פסח", "חול המועד של פסח": "חול המועד פסח",
    "חול המועד סוכות": "חול המועד סוכות", "חול המועד של סוכות": "חול המועד סוכות",
    "חול המועד": "חול המועד", "החג": "החג", "החגים": "החגים",
}
_HN = "|".join(re.escape(n) for n in sorted(HOLIDAY_NAMES, key=len, reverse=True))
HOLIDAY = re.compile(
    rf"{S}(?:ו?(?P<rel>אחרי|לפני|ב?ערב|מיד\s+אחרי)\s+|ו?[בל]?)(?P<name>{_HN}){E}"
    r"(?!\s+(?:הקרובים|הבאים))")


def _festival_days(today: dt.date) -> dict[str, list[dt.date]]:
    """Each festival's days (hdate, Israel) from a month ago to about fourteen months ahead."""
    from hdate import HebrewDate
    from hdate.holidays import HolidayDatabase

    db = HolidayDatabase(diaspora=False)
    year = HebrewDate.from_gdate(today).year
    days: dict[str, list[dt.date]] = {name: [] for name in FESTIVALS}
    for hyear in (year - 1, year, year + 1):
        for hday, holidays in db.lookup_holidays_for_year(HebrewDate(year=hyear)).items():
            names = {h.name for h in holidays}
            for festival, parts in FESTIVALS.items():
                if names & parts:
                    days[festival].append(hday.to_gdate())
    return {name: sorted(d for d in ds if today - dt.timedelta(days=40) <= d) for name, ds in
            days.items()}


def _runs(days: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    runs: list[list[dt.date]] = []
    for day in days:
        if runs and (day - runs[-1][-1]).days <= 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return [(r[0], r[-1]) for r in runs]


def _holiday_run(name: str, today: dt.date, festivals) -> tuple[str, tuple[dt.date, dt.date]]:
    """The holiday under way or the next one (its name, its first and last day)."""
    if name in ("החג", "החגים"):
        options = [(run, n) for n in CHAGIM for run in _runs(festivals[n]) if run[1] >= today]
        run, chosen = min(options)
        if name == "החגים" and chosen in AUTUMN:
            sukkot = min(r for r in _runs(festivals["סוכות"]) if r[1] >= today)
            return "החגים", (run[0], sukkot[1])
        return chosen, run
    if name == "חול המועד":
        options = [(run, n) for n in ("חול המועד פסח", "חול המועד סוכות")
                   for run in _runs(festivals[n]) if run[1] >= today]
        run, chosen = min(options)
        return chosen, run
    return name, min(r for r in _runs(festivals[name]) if r[1] >= today)


def _note(said: str, name: str) -> str:
    return "" if said == name else name


def _holidays(text: _Text, today: dt.date) -> list[_Day]:
    found = []
    matches = text.take(HOLIDAY)
    festivals = _festival_days(today) if matches else {}
    for m in matches:
        rel = next((r for r in ("ערב", "אחרי", "לפני") if r in (m["rel"] or "")), "")
        said = HOLIDAY_NAMES[m["name"]]
        name, (first, last) = _holiday_run(said, today, festivals)
        if rel == "ערב" or rel == "לפני":
            if first <= today:  # under way: its eve and the days before it are next year's
                name, (first, last) = _holiday_run(name, first + dt.timedelta(days=60),
                                                   _festival_days(first + dt.timedelta(days=60)))
            eve = first - dt.timedelta(days=1)
            if rel == "ערב":
                found.append(_Day(day=eve, words=m.group(0), note=_note(said, name)))
            else:
                found.append(_Day(days=(max(today, eve - dt.timedelta(days=6)), eve),
                                  words=m.group(0), note=_note(said, name)))
        elif rel == "אחרי":
            after = last + dt.timedelta(days=1)
            found.append(_Day(days=(after, after + dt.timedelta(days=6)), words=m.group(0),
                              note=_note(said, name)))
        elif first == last:
            found.append(_Day(day=first, words=m.group(0), note=_note(said, name)))
        else:
            found.append(_Day(days=(max(first, today), last), words=m.group(0),
                              note=_note(said, name)))
    return found


# ---- times --------------------------------------------------------------------------------------

_HOUR = rf"\d{{1,2}}|{NUMBER}"
_MIN_WORDS = {"וחצי": 30, "ורבע": 15, "ועשרה": 10, "ועשר": 10, "וחמישה": 5, "וחמש": 5,
              "ועשרים": 20, "ועשרים וחמש": 25, "ועשרים וחמישה": 25, "וארבעים": 40,
              "וחמישים": 50, "ושלושים": 30, "וארבעים וחמש": 45, "וחמישים וחמש": 55,
              "ושלושים וחמש": 35}
_MINS = "|".join(sorted(_MIN_WORDS, key=len, reverse=True))
PARTS = re.compile(
    rf"{S}ו?(?:(?P<afternoon>אחה\"צ|אחהצ|(?:ב|ל)?אחרי\s+ה?צהר[י]?ים|(?:ב|ל)?אחר\s+ה?צהר[י]?ים)"
    rf"|(?P<morning>[בל]?בוקר|לפנה\"צ|לפני\s+ה?צהר[י]?ים)|(?P<noon>[בל]?צהר[י]?ים)"
    rf"|(?P<evening>[בל]?ערב)|(?P<night>[בל]?לילה)|(?P<today_morning>הבוקר)"
    rf"|(?P<today_evening>הערב)|(?P<today_night>הלילה)){E}")
CLOCK = re.compile(rf"{S}(?:{P}|ב?שעה\s+)(?P<h>\d{{1,2}})[:.](?P<m>\d{{2}}){E}")
TO_HOUR = re.compile(  # "רבע לעשר", "עשרה לשמונה", "עשר פחות רבע"
    rf"{S}{P}(?:(?P<before>רבע|עשרה|עשר|חמישה|חמש|עשרים|\d{{1,2}})\s+ל(?P<h>{_HOUR})"
    rf"|(?P<h2>{_HOUR})\s+פחות\s+(?P<before2>רבע|עשרה|עשר|חמישה|חמש|עשרים)){E}")
_PLAIN_MINS = {"עשרים": 20, "שלושים": 30, "ארבעים": 40, "חמישים": 50, "חמש עשרה": 15,
               "עשרים וחמש": 25, "שלושים וחמש": 35, "ארבעים וחמש": 45, "חמישים וחמש": 55}
_PLAIN = "|".join(sorted(_PLAIN_MINS, key=len, reverse=True))
_PART_AHEAD = r"(?=\s+(?:ו?[בל]?(?:בוקר|ערב|לילה|צהר[י]?ים)|אחרי\s+ה?צהר|אחר\s+ה?צהר|אחה))"
WORD_TIME = re.compile(
    rf"{S}(?:(?P<pre>[ו]?[בל]|ו?ב?שעה\s+)?(?P<h>{_HOUR})(?:\s+(?P<min>ו-?\d{{1,2}}\s+דקות"
    rf"|ו(?:{NUMBER})\s+דקות|{_MINS}|ו-?\d{{1,2}}|{_PLAIN}))?(?P<tail>{_PART_AHEAD})?){E}")
IN_HOURS = re.compile(
    rf"{S}ו?ב?עוד\s+(?:(?P<half>חצי\s+שעה)|(?P<quarter>רבע\s+שעה)|(?P<two>שעתיים)"
    rf"|(?P<n>\d+|{NUMBER})\s+שעות|(?P<one>שעה))(?P<and_half>\s+וחצי)?{E}")
AROUND = re.compile(  # "אחרי ארבע", "לפני עשר", "בין ארבע לשש"
    rf"{S}ו?(?:(?P<rel>אחרי|לפני)\s+(?:ה?שעה\s+)?(?P<h>{_HOUR})(?:\s+(?P<min>{_MINS}))?"
    rf"|בין\s+(?:ה?שעות\s+)?(?P<a>{_HOUR})\s+ל(?P<b>{_HOUR})){E}")
NOT_HOURS = {"שני", "שתי", "שנים", "שניים", "אחד"}  # "לשני אנשים": hours are said "בשתיים", "באחת"
EXACTLY = re.compile(rf"{S}(?:בדיוק|בול){E}")


def _minutes(word: str | None) -> int:
    if not word:
        return 0
    if word in _MIN_WORDS:
        return _MIN_WORDS[word]
    if word in _PLAIN_MINS:
        return _PLAIN_MINS[word]
    value = number(word.removeprefix("ו").removeprefix("-").removesuffix(" דקות").strip())
    return value or 0


def _before(word: str) -> int:
    return {"רבע": 15, "עשרה": 10, "עשר": 10, "חמישה": 5, "חמש": 5, "עשרים": 20}.get(word) \
        or int(word)


@dataclasses.dataclass
class _Clock:
    hour: int  # as said, 0–23
    minute: int
    words: str
    kind: str = "at"  # "at", "exact" (already a 24-hour time), "after", "before", "between"
    until: tuple[int, int] | None = None  # "between": the later hour and minute as said


def _times(text: _Text, now: dt.datetime, hours_ahead: list[re.Match]):
    """The times said, and the day that "בעוד שעתיים" (`hours_ahead`, taken before the days are
    read) falls on."""
    found, days = [], []
    for m in hours_ahead:
        minutes = {"half": 30, "quarter": 15, "two": 120, "one": 60}
        amount = next((v for k, v in minutes.items() if m[k]), None) or 60 * number(m["n"])
        at = now + dt.timedelta(minutes=amount + (30 if m["and_half"] else 0))
        found.append(_Clock(at.hour, at.minute, m.group(0), "exact"))
        days.append(_Day(day=at.date(), words=m.group(0)))
    for m in text.take(AROUND, lambda m: all(number(x) is not None and 0 < number(x) < 24
                                             for x in (m["h"] or m["a"], m["h"] or m["b"]))):
        if m["rel"]:
            found.append(_Clock(number(m["h"]), _minutes(m["min"]), m.group(0),
                                "after" if m["rel"] == "אחרי" else "before"))
        else:
            found.append(_Clock(number(m["a"]), 0, m.group(0), "between", (number(m["b"]), 0)))
    for m in text.take(CLOCK, lambda m: int(m["h"]) < 24 and int(m["m"]) < 60):
        found.append(_Clock(int(m["h"]), int(m["m"]), m.group(0)))
    for m in text.take(TO_HOUR, lambda m: 1 <= (number(m["h"] or m["h2"]) or 0) <= 12):
        hour = number(m["h"] or m["h2"])
        mins = 60 - _before(m["before"] or m["before2"])
        found.append(_Clock((hour - 1) or 12, mins, m.group(0)))

    def is_time(m: re.Match) -> bool:
        hour = number(m["h"])
        if m["h"] in NOT_HOURS:
            return False
        if hour is None or not 0 <= hour <= 23 or not (m["pre"] or m["min"] or
                                                       m["tail"] is not None):
            return False  # a number alone is not a time
        # 13–23 in words: "בשמונה עשרה" (feminine, as hours are said), not "חמישה עשר" (a date)
        return hour <= 12 or m["h"].isdigit() or m["h"].endswith("עשרה") or "שעה" in (
            m["pre"] or "")
    for m in text.take(WORD_TIME, is_time):
        found.append(_Clock(number(m["h"]), _minutes(m["min"]), m.group(0)))
    text.take(EXACTLY)
    return found, days


def _parts(text: _Text) -> list[tuple[str, bool, str]]:
    """(part of the day, whether the words also say today, words) for each part said."""
    found = []
    for m in text.take(PARTS):
        kind = next(k for k, v in m.groupdict().items() if v)
        found.append((kind.removeprefix("today_"), kind.startswith("today_"), m.group(0)))
    return found


def _readings(hour: int, minute: int, part: str | None) -> list[dt.time]:
    """The times an hour said with (or without) a part of the day can mean."""
    if hour >= 13 or hour == 0:
        return [dt.time(hour % 24, minute)]
    h = hour % 12  # 12 o'clock counts from 0
    if part == "noon" and hour not in (11, 12, 1, 2, 3):
        part = None  # "שמונה בצהריים" says nothing: read as the bare hour
    if part == "morning":
        return [dt.time(h, minute)]
    if part == "noon":
        return [dt.time(h if hour >= 11 else h + 12, minute)]
    if part in ("afternoon", "evening"):
        return [dt.time(h + 12, minute)]
    if part == "night":
        return [dt.time(h if hour == 12 or hour <= 5 else h + 12, minute)]
    both = [dt.time(h, minute), dt.time(h + 12, minute)]
    return [t for t in both if EARLIEST <= t <= LATEST] or both


def _said_hour(t: dt.time) -> str:
    """"בשמונה" — a time's hour said without its part of the day."""
    words = speakable(f"ב-{t.hour % 12 or 12}:{t.minute:02d}")
    for part in ("בבוקר", "בערב", "בלילה", "אחר הצהריים", "בצהריים"):
        words = words.removesuffix(" " + part)
    return words


# ---- the whole -----------------------------------------------------------------------------------

def _local_now(now: dt.datetime, tz: str) -> dt.datetime:
    zone = zoneinfo.ZoneInfo(tz)
    return now.astimezone(zone) if now.tzinfo else now.replace(tzinfo=zone)


def resolve(text: str, now: dt.datetime, tz: str = TIMEZONE) -> When:
    """What `text` says about when, seen at `now` (aware, or naive in `tz`) in `tz`."""
    local = _local_now(now, tz)
    today = local.date()
    words = _Text(text)
    hours_ahead = words.take(IN_HOURS)  # "בעוד שעתיים": read first, see _times
    days = _in(words, today) + _holidays(words, today) + _dates(words, today)
    days += _relative(words, today) + _weeks(words, today)
    times, hour_days = _times(words, local, hours_ahead)
    days += hour_days
    weekdays = _weekdays(words)
    parts = _parts(words)
    notes = [d.note for d in days if d.note]
    matched = " ".join(w for _, w in sorted(words.understood))
    if notes:
        matched += " (" + "; ".join(notes) + ")"

    if any(p[1] for p in parts):  # "הערב", "הבוקר": today
        days.append(_Day(day=today, words=next(p[2] for p in parts if p[1])))
    asks = [d for d in days if d.ask]
    day, span, problem = (None, None, asks[0]) if asks else _one_day(days, weekdays, today)
    time, window, ask, choices = _time_of(times, parts, local if day == today else None)
    if problem:
        ask = problem.ask
    return When(day=day, days=span, time=time, window=window, ask=ask, matched=matched,
                day_choices=problem.choices if problem else (), time_choices=choices)


def _time_of(times: list[_Clock], parts, now: dt.datetime | None):
    """(time, window, question, times offered) from the times and parts of the day said; `now`
    when the day is today (a time already past is not offered)."""
    kinds = list(dict.fromkeys(p[0] for p in parts))
    if len(kinds) > 1:
        return None, None, " או ".join(PART_WORDS[k] for k in kinds) + "?", ()
    part = kinds[0] if kinds else None
    window = WINDOWS[part] if part else None
    if not times:
        return None, window, "", ()
    if len({(c.hour, c.minute, c.kind, c.until) for c in times}) > 1:
        return None, window, " או ".join(c.words for c in times) + "?", ()
    clock = times[0]
    if clock.kind == "exact":
        return dt.time(clock.hour, clock.minute), None, "", ()
    readings = _readings(clock.hour, clock.minute, part)
    if clock.kind == "between":
        ends = _readings(*clock.until, part)
        pairs = [(a, b) for a in readings for b in ends
                 if a < b and (b.hour - a.hour) <= 6]
        if len(pairs) == 1:
            return None, pairs[0], "", ()
        return None, None, f"{clock.words} בבוקר או בערב?", ()
    if clock.kind in ("after", "before"):
        if len(readings) > 1:
            return None, None, f"{clock.words} בבוקר או בערב?", ()
        t = readings[0]
        if clock.kind == "after":
            return None, (t, max(t, dt.time(22, 0))), "", ()
        return None, (min(t, EARLIEST), t), "", ()
    if now is not None:
        if all(t <= now.time() for t in readings):
            return None, None, "השעה הזאת כבר עברה היום. באיזו שעה, או באיזה יום אחר?", ()
        readings = [t for t in readings if t > now.time()]
    if len(readings) == 1:
        return readings[0], None, "", ()
    return None, None, f"{_said_hour(readings[0])} בבוקר או בערב?", tuple(readings)


def _one_day(days: list[_Day], weekdays, today: dt.date):
    """(day, range, a _Day that asks) from all the day phrases said."""
    singles = list(dict.fromkeys(d.day for d in days if d.day))
    spans = [d.days for d in days if d.days]
    if len(singles) > 1:
        said = [d.words for d in days if d.day]
        return None, None, _Day(ask=" או ".join(said) + "?", choices=tuple(singles))
    day = singles[0] if singles else None
    span = spans[0] if spans and day is None else None
    if day and spans and not all(a <= day <= b for a, b in spans):
        said = [d.words for d in days]
        return None, None, _Day(ask=" או ".join(said) + "?")
    for n, which, said in weekdays:
        if day is not None:
            if (day.weekday() + 1) % 7 != n:
                return None, None, _Day(
                    ask=f"{said_date(day)} הוא יום {WEEKDAYS[(day.weekday() + 1) % 7]}. "
                        f"ביום {WEEKDAYS[n]}, או ביום {WEEKDAYS[(day.weekday() + 1) % 7]}, "
                        f"{said_date(day)}?")
            continue
        if span is not None:
            inside = [span[0] + dt.timedelta(days=i) for i in range((span[1] - span[0]).days + 1)]
            match = [d for d in inside if (d.weekday() + 1) % 7 == n]
            if match:
                day, span = match[0], None
                continue
        found = _weekday_day(n, which, today, said)
        if found.ask:
            return None, None, found
        day, span = found.day, None
    return day, span, None


def refine(asked: When, answer: str, now: dt.datetime, tz: str = TIMEZONE) -> When:
    """The caller's answer to `asked`'s question read with what was already clear: "בערב" picks
    20:00 of (08:00, 20:00); "הבא" or a date picks one of the days offered."""
    heard = resolve(answer, now, tz)
    day = heard.day or asked.day
    if asked.day_choices and heard.day is None:
        said = _normal(answer)
        later = re.search(rf"{S}{P}(?:הבא|השני|שבוע\s+הבא|השבוע\s+הבא){E}", said)
        if later or re.search(rf"{S}{P}(?:הזה|השבוע|הראשון|היום){E}", said):
            day = asked.day_choices[-1 if later else 0]
    time, window = heard.time, heard.window or asked.window
    if time is None and asked.time_choices and heard.window:
        inside = [t for t in asked.time_choices if heard.window[0] <= t <= heard.window[1]]
        time = inside[0] if len(inside) == 1 else None
    time = time or asked.time
    if heard.ask and not (day or time):
        return heard
    return When(day=day, days=None if day else heard.days or asked.days, time=time,
                window=None if time else window, matched=f"{asked.matched} {heard.matched}".strip())


def spoken_slot(at: dt.datetime, with_day: bool = True) -> str:
    """A slot as the line says it: "ביום שלישי, השבעה עשר בדצמבר, בעשר בבוקר"; without the day,
    "באחת עשרה וחצי בבוקר" (words by ivr/speakable.py)."""
    clock = speakable(f"ב-{at.hour}:{at.minute:02d}")
    if not with_day:
        return clock
    return f"ביום {WEEKDAYS[(at.weekday() + 1) % 7]}, {said_date(at.date())}, {clock}"
