"""A caller's Hebrew words about when, against a fixed "now": the day, range, time or part of
the day the booking code gets, or the question the caller hears back."""

import datetime as dt

import pytest

from ivr.booking.when import PAST, When, refine, resolve, spoken_slot

T = dt.time


def D(month: int, day: int, year: int = 2027) -> dt.date:
    return dt.date(year, month, day)


# The "now"s (Asia/Jerusalem). Checked with zoneinfo: clocks go forward on Fri 26 Mar 2027 at
# 02:00 and back on Sun 31 Oct 2027 at 02:00; with hdate: Pesach 2027 is 22–28 Apr (Chol HaMoed
# 23–27), Sukkot 16–23 Oct with Shemini Atzeret (Chol HaMoed 17–22), Rosh Hashana 2–3 Oct, Yom
# Kippur 11 Oct, Pesach 2028 begins 11 Apr, Shavuot 2028 is 31 May.
SUN = dt.datetime(2027, 1, 10, 9, 0)  # a Sunday morning
THU_NIGHT = dt.datetime(2027, 1, 14, 23, 50)  # Thursday, ten to midnight
THU_UTC = dt.datetime(2027, 1, 13, 22, 30, tzinfo=dt.UTC)  # already Thursday 00:30 in Israel
JAN31 = dt.datetime(2027, 1, 31, 10, 0)
FEB28 = dt.datetime(2027, 2, 28, 10, 0)
SPRING = dt.datetime(2027, 3, 25, 23, 50)  # Thursday night before the clocks go forward
AUTUMN = dt.datetime(2027, 10, 30, 20, 0)  # Saturday evening before the clocks go back
PESACH_EVE_WEEK = dt.datetime(2027, 4, 19, 10, 0)  # Monday before Pesach
PESACH_MID = dt.datetime(2027, 4, 25, 10, 0)  # Sunday of Chol HaMoed Pesach
ELUL = dt.datetime(2027, 9, 5, 10, 0)  # four weeks before Rosh Hashana
BEFORE_SUKKOT = dt.datetime(2027, 10, 12, 10, 0)  # the day after Yom Kippur

NOT_A_DATE = "אין תאריך כזה. לאיזה יום לקבוע?"
TIME_PAST = "השעה הזאת כבר עברה היום. באיזו שעה, או באיזה יום אחר?"

ROWS = [
    # day words, with the prefixes ASR glues on
    ("היום", SUN, {"day": D(1, 10)}),
    ("מחר", SUN, {"day": D(1, 11)}),
    ("מחרתיים", SUN, {"day": D(1, 12)}),
    ("ומחר", SUN, {"day": D(1, 11)}),
    ("למחרתיים", SUN, {"day": D(1, 12)}),
    ("אתמול", SUN, {"ask": PAST}),
    ("שלשום", SUN, {"ask": PAST}),
    # weekdays
    ("יום שלישי", SUN, {"day": D(1, 12)}),
    ("בשלישי", SUN, {"day": D(1, 12)}),
    ("שלישי", SUN, {"day": D(1, 12)}),
    ("ביום ג'", SUN, {"day": D(1, 12)}),
    ("ביום ג׳", SUN, {"day": D(1, 12)}),
    ("ביום שלישי הזה", SUN, {"day": D(1, 12)}),
    ("ביום שלישי הקרוב", SUN, {"day": D(1, 12)}),
    ("ביום שלישי הבא", SUN, {"ask": "ביום שלישי השבוע, השנים עשר בינואר, או בשבוע הבא, "
                                     "התשעה עשר בינואר?"}),
    ("ביום שלישי בשבוע הבא", SUN, {"day": D(1, 19)}),
    ("ביום ראשון", SUN, {"ask": "היום, או ביום ראשון הבא, השבעה עשר בינואר?"}),
    ("ביום ראשון הבא", SUN, {"day": D(1, 17)}),
    ("בשבת", SUN, {"day": D(1, 16)}),
    ("בחמישי", SUN, {"day": D(1, 14)}),
    ("ביום ה'", SUN, {"day": D(1, 14)}),
    ("בשבוע הבא ביום שני", SUN, {"day": D(1, 18)}),
    # in N days, weeks, a month
    ("בעוד שבוע", SUN, {"day": D(1, 17)}),
    ("בעוד שבועיים", SUN, {"day": D(1, 24)}),
    ("בעוד יומיים", SUN, {"day": D(1, 12)}),
    ("בעוד שלושה ימים", SUN, {"day": D(1, 13)}),
    ("בעוד חמישה ימים", SUN, {"day": D(1, 15)}),
    ("בעוד 3 ימים", SUN, {"day": D(1, 13)}),
    ("בעוד 2 שבועות", SUN, {"day": D(1, 24)}),
    ("עוד שלושה שבועות", SUN, {"day": D(1, 31)}),
    ("בעוד חודש", SUN, {"day": D(2, 10)}),
    ("בעוד כמה ימים", SUN, {"ask": "בעוד כמה ימים בדיוק? או לאיזה יום?"}),
    # weeks and months
    ("שבוע הבא", SUN, {"days": (D(1, 17), D(1, 23))}),
    ("אני רוצה לקבוע פגישה לשבוע הבא", SUN, {"days": (D(1, 17), D(1, 23))}),
    ("השבוע", SUN, {"days": (D(1, 10), D(1, 16))}),
    ("סוף השבוע", SUN, {"days": (D(1, 15), D(1, 16))}),
    ("בסוף השבוע הבא", SUN, {"days": (D(1, 22), D(1, 23))}),
    ("בחודש הבא", SUN, {"days": (D(2, 1), D(2, 28))}),
    ("בינואר", SUN, {"days": (D(1, 10), D(1, 31))}),
    ("בפברואר", SUN, {"days": (D(2, 1), D(2, 28))}),
    # dates in digits and in words
    ("15.1", SUN, {"day": D(1, 15)}),
    ("15/1", SUN, {"day": D(1, 15)}),
    ("15.1.27", SUN, {"day": D(1, 15)}),
    ("ב-15.1.2027", SUN, {"day": D(1, 15)}),
    ("ה-15 לחודש", SUN, {"day": D(1, 15)}),
    ("ב15 לחודש", SUN, {"day": D(1, 15)}),
    ("בחמישה עשר לחודש", SUN, {"day": D(1, 15)}),
    ("חמישה עשר בינואר", SUN, {"day": D(1, 15)}),
    ("בחמש עשרה בינואר", SUN, {"day": D(1, 15)}),
    ("ה-3 במרץ", SUN, {"day": D(3, 3)}),
    ("בשלושה במרץ", SUN, {"day": D(3, 3)}),
    ("3 במרס", SUN, {"day": D(3, 3)}),
    ("הראשון בפברואר", SUN, {"day": D(2, 1)}),
    ("ב-1 באפריל", SUN, {"day": D(4, 1)}),
    ("בעשרים ואחד בינואר", SUN, {"day": D(1, 21)}),
    ("5.1", SUN, {"day": D(1, 5, 2028)}),  # passed this year: next year's
    ("15.1.26", SUN, {"ask": PAST}),
    ("31.2", SUN, {"ask": NOT_A_DATE}),
    ("ביום שלישי ה-12", SUN, {"day": D(1, 12)}),
    ("ביום רביעי ה-12", SUN, {"ask": "השנים עשר בינואר הוא יום שלישי. ביום רביעי, או ביום "
                                      "שלישי, השנים עשר בינואר?"}),
    ("מחר או מחרתיים", SUN, {"ask": "מחר או מחרתיים?"}),
    # times and parts of the day (no day said)
    ("בשמונה וחצי", SUN, {"ask": "בשמונה וחצי בבוקר או בערב?"}),
    ("בשמונה", SUN, {"ask": "בשמונה בבוקר או בערב?"}),
    ("שמונה ועשרים", SUN, {"ask": "בשמונה ועשרים בבוקר או בערב?"}),
    ("בשבע", SUN, {"ask": "בשבע בבוקר או בערב?"}),
    ("בתשע", SUN, {"ask": "בתשע בבוקר או בערב?"}),
    ("בשמונה בצהריים", SUN, {"ask": "בשמונה בבוקר או בערב?"}),
    ("בתשע וחצי", SUN, {"time": T(9, 30)}),  # 21:30 is after the last appointment hour
    ("רבע לעשר", SUN, {"time": T(9, 45)}),
    ("עשר ורבע", SUN, {"time": T(10, 15)}),
    ("14:30", SUN, {"time": T(14, 30)}),
    ("בשעה 14:30", SUN, {"time": T(14, 30)}),
    ("בשעה 14", SUN, {"time": T(14, 0)}),
    ("בשתיים", SUN, {"time": T(14, 0)}),
    ("באחת", SUN, {"time": T(13, 0)}),
    ("בשש", SUN, {"time": T(18, 0)}),
    ("באחת עשרה", SUN, {"time": T(11, 0)}),
    ("בשתים עשרה", SUN, {"time": T(12, 0)}),
    ("בשמונה וחצי בערב", SUN, {"time": T(20, 30)}),
    ("בעשר בבוקר", SUN, {"time": T(10, 0)}),
    ("בשבע בבוקר", SUN, {"time": T(7, 0)}),
    ("בשלוש וחצי אחרי הצהריים", SUN, {"time": T(15, 30)}),
    ("באחת בצהריים", SUN, {"time": T(13, 0)}),
    ("בעשר בלילה", SUN, {"time": T(22, 0)}),
    ("עשרה לשמונה בערב", SUN, {"time": T(19, 50)}),
    ("בשמונה ועשרה בבוקר", SUN, {"time": T(8, 10)}),
    ("עשר פחות רבע", SUN, {"time": T(9, 45)}),
    ("בבוקר", SUN, {"window": (T(7, 0), T(12, 0))}),
    ("בצהריים", SUN, {"window": (T(12, 0), T(14, 0))}),
    ("אחרי הצהריים", SUN, {"window": (T(14, 0), T(18, 0))}),
    ('אחה"צ', SUN, {"window": (T(14, 0), T(18, 0))}),
    ("בערב", SUN, {"window": (T(18, 0), T(22, 0))}),
    ("בלילה", SUN, {"window": (T(21, 0), T(23, 59))}),
    ("בבוקר או בערב", SUN, {"ask": "בבוקר או בערב?"}),
    ("8 בערב", SUN, {"time": T(20, 0)}),
    ("תשע בבוקר", SUN, {"time": T(9, 0)}),
    ("ב-10.30", SUN, {"time": T(10, 30)}),
    ("בעשר שלושים", SUN, {"time": T(10, 30)}),
    ("בשמונה עשרה", SUN, {"time": T(18, 0)}),
    ("בחמש וחמש דקות", SUN, {"time": T(17, 5)}),
    ("אחרי ארבע", SUN, {"window": (T(16, 0), T(22, 0))}),
    ("לפני עשר", SUN, {"window": (T(7, 0), T(10, 0))}),
    ("בין ארבע לשש", SUN, {"window": (T(16, 0), T(18, 0))}),
    ("אחרי שמונה", SUN, {"ask": "אחרי שמונה בבוקר או בערב?"}),
    ("אני רוצה שני תורים", SUN, {}),  # two appointments, not Monday
    ("זה לשני אנשים", SUN, {}),  # for two people, not at two
    ("אפר", SUN, {}),  # ash, not April
    ("שני", SUN, {"day": D(1, 11)}),  # the answer to "which day?"
    ("בעוד שעתיים", SUN, {"day": D(1, 10), "time": T(11, 0)}),
    # day and time together
    ("מחר בעשר", SUN, {"day": D(1, 11), "time": T(10, 0)}),
    ("אני רוצה לקבוע תור לתספורת מחר בעשר", SUN, {"day": D(1, 11), "time": T(10, 0)}),
    ("מחר בשמונה", SUN, {"day": D(1, 11), "ask": "בשמונה בבוקר או בערב?"}),
    ("מחר בבוקר", SUN, {"day": D(1, 11), "window": (T(7, 0), T(12, 0))}),
    ("הערב בשמונה", SUN, {"day": D(1, 10), "time": T(20, 0)}),
    ("הערב", SUN, {"day": D(1, 10), "window": (T(18, 0), T(22, 0))}),
    ("היום בשמונה", SUN, {"day": D(1, 10), "time": T(20, 0)}),  # 08:00 has passed
    ("היום בשמונה בבוקר", SUN, {"day": D(1, 10), "ask": TIME_PAST}),
    ("ביום שלישי בעשר בבוקר", SUN, {"day": D(1, 12), "time": T(10, 0)}),
    ("ביום ג' בשתיים וחצי", SUN, {"day": D(1, 12), "time": T(14, 30)}),
    ("בשבוע הבא בבוקר", SUN, {"days": (D(1, 17), D(1, 23)), "window": (T(7, 0), T(12, 0))}),
    ("מחר אחרי חמש", SUN, {"day": D(1, 11), "window": (T(17, 0), T(22, 0))}),
    ("ביום שני בין עשר לשתים עשרה", SUN, {"day": D(1, 11), "window": (T(10, 0), T(12, 0))}),
    ("מחרתיים ב 14:30", SUN, {"day": D(1, 12), "time": T(14, 30)}),
    ("ב-15.1 בשעה 9:15", SUN, {"day": D(1, 15), "time": T(9, 15)}),
    # around midnight
    ("מחר", THU_NIGHT, {"day": D(1, 15)}),
    ("היום", THU_NIGHT, {"day": D(1, 14)}),
    ("מחר בעשר", THU_NIGHT, {"day": D(1, 15), "time": T(10, 0)}),
    ("בשבוע הבא", THU_NIGHT, {"days": (D(1, 17), D(1, 23))}),
    ("ביום ראשון", THU_NIGHT, {"day": D(1, 17)}),
    ("ביום שלישי הבא", THU_NIGHT, {"day": D(1, 19)}),
    ("סוף השבוע", THU_NIGHT, {"days": (D(1, 15), D(1, 16))}),
    ("היום בשמונה", THU_NIGHT, {"day": D(1, 14), "ask": TIME_PAST}),
    ("ה-14 לחודש", THU_NIGHT, {"day": D(1, 14)}),
    ("ה-10 לחודש", THU_NIGHT, {"day": D(2, 10)}),  # passed this month: next month's
    ("בעוד חצי שעה", THU_NIGHT, {"day": D(1, 15), "time": T(0, 20)}),
    ("היום", THU_UTC, {"day": D(1, 14)}),  # 22:30 UTC on Wednesday is Thursday in Israel
    ("מחר", THU_UTC, {"day": D(1, 15)}),
    # month ends
    ("בעוד חודש", JAN31, {"day": D(2, 28)}),
    ("מחר", JAN31, {"day": D(2, 1)}),
    ("ה-30 לחודש", JAN31, {"day": D(3, 30)}),  # February has none
    ("ה-31 לחודש", JAN31, {"day": D(1, 31)}),
    ("בחודש הבא", JAN31, {"days": (D(2, 1), D(2, 28))}),
    ("סוף החודש", JAN31, {"days": (D(1, 31), D(1, 31))}),
    ("מחר", FEB28, {"day": D(3, 1)}),
    ("מחרתיים", FEB28, {"day": D(3, 2)}),
    ("29.2", FEB28, {"day": D(2, 29, 2028)}),  # 2027 has no 29 February; 2028 does
    ("ה-29 לחודש", FEB28, {"day": D(3, 29)}),
    ("בעוד שבוע", FEB28, {"day": D(3, 7)}),
    ("בעוד חודש", FEB28, {"day": D(3, 28)}),
    ("1.3", FEB28, {"day": D(3, 1)}),
    # clock changes
    ("מחר בעשר", SPRING, {"day": D(3, 26), "time": T(10, 0)}),
    ("בעוד יומיים", SPRING, {"day": D(3, 27)}),
    ("ביום שישי", SPRING, {"day": D(3, 26)}),
    ("מחר בשמונה בבוקר", AUTUMN, {"day": D(10, 31), "time": T(8, 0)}),
    ("הערב בתשע", AUTUMN, {"day": D(10, 30), "time": T(21, 0)}),
    ("הערב בשמונה", AUTUMN, {"day": D(10, 30), "ask": TIME_PAST}),
    ("בעוד שבוע", AUTUMN, {"day": D(11, 6)}),
    # holidays (hdate, Israel)
    ("אחרי החג", PESACH_EVE_WEEK, {"days": (D(4, 29), D(5, 5))}),
    ("אחרי פסח", PESACH_EVE_WEEK, {"days": (D(4, 29), D(5, 5))}),
    ("בחול המועד", PESACH_EVE_WEEK, {"days": (D(4, 23), D(4, 27))}),
    ("לפני פסח", PESACH_EVE_WEEK, {"days": (D(4, 19), D(4, 21))}),
    ("בערב פסח", PESACH_EVE_WEEK, {"day": D(4, 21)}),
    ("בפסח", PESACH_EVE_WEEK, {"days": (D(4, 22), D(4, 28))}),
    ("בחול המועד פסח", PESACH_EVE_WEEK, {"days": (D(4, 23), D(4, 27))}),
    ("בחול המועד סוכות", PESACH_EVE_WEEK, {"days": (D(10, 17), D(10, 22))}),
    ("בערב ראש השנה", PESACH_EVE_WEEK, {"day": D(10, 1)}),
    ("ביום כיפור", PESACH_EVE_WEEK, {"day": D(10, 11)}),
    ("אחרי החג", PESACH_MID, {"days": (D(4, 29), D(5, 5))}),  # the one under way
    ("בחול המועד", PESACH_MID, {"days": (D(4, 25), D(4, 27))}),
    ("ערב פסח", PESACH_MID, {"day": D(4, 10, 2028)}),
    ("אחרי החג", ELUL, {"days": (D(10, 4), D(10, 10))}),  # after Rosh Hashana
    ("אחרי החגים", ELUL, {"days": (D(10, 24), D(10, 30))}),  # after Sukkot
    ("אחרי החג", BEFORE_SUKKOT, {"days": (D(10, 24), D(10, 30))}),
    ("בחול המועד", BEFORE_SUKKOT, {"days": (D(10, 17), D(10, 22))}),
    ("לפני סוכות", BEFORE_SUKKOT, {"days": (D(10, 12), D(10, 15))}),
    ("בשבועות", ELUL, {"day": D(5, 31, 2028)}),
    ("בסוכות", BEFORE_SUKKOT, {"days": (D(10, 16), D(10, 23))}),
]


def _shown(when: When) -> dict:
    return {k: v for k, v in {"day": when.day, "days": when.days, "time": when.time,
                              "window": when.window, "ask": when.ask}.items() if v}


@pytest.mark.parametrize(("text", "now", "expected"), ROWS,
                         ids=[f"{i}-{r[0]}" for i, r in enumerate(ROWS)])
def test_a_callers_words_become_a_day_a_time_or_a_question(text, now, expected):
    assert _shown(resolve(text, now)) == expected


def test_the_table_covers_at_least_ninety_expressions():
    assert len(ROWS) >= 90
    assert len({(text, now) for text, now, _ in ROWS}) == len(ROWS)


@pytest.mark.parametrize(("text", "now", "said"), [
    ("5.1", SUN, "בשנה הבאה"),
    ("ה-10 לחודש", THU_NIGHT, "ה-10 בחודש הזה עבר: בחודש הבא"),
    ("ה-30 לחודש", JAN31, "ה-30 בחודש הזה עבר: במרץ"),
    ("אחרי החג", ELUL, "ראש השנה"),
    ("אחרי החג", BEFORE_SUKKOT, "סוכות"),
])
def test_matched_says_what_was_assumed(text, now, said):
    assert said in resolve(text, now).matched


def test_matched_keeps_only_the_words_about_when():
    assert resolve("שלום, אני רוצה תור מחר בעשר בבוקר בבקשה", SUN).matched == "מחר בעשר בבוקר"


def test_the_day_and_time_are_an_instant_in_israel_across_the_clock_changes():
    before = resolve("היום בעשר", dt.datetime(2027, 3, 25, 8, 0)).start()
    after = resolve("מחר בעשר", SPRING).start()
    assert (before.utcoffset(), after.utcoffset()) == (dt.timedelta(hours=2), dt.timedelta(hours=3))
    assert after.astimezone(dt.UTC) == dt.datetime(2027, 3, 26, 7, 0, tzinfo=dt.UTC)
    back = resolve("מחר בשמונה בבוקר", AUTUMN).start()
    assert back.astimezone(dt.UTC) == dt.datetime(2027, 10, 31, 6, 0, tzinfo=dt.UTC)
    assert resolve("מחר", SUN).start() is None  # no time said: no instant


def test_an_answer_to_the_question_completes_the_request():
    asked = resolve("מחר בשמונה", SUN)
    assert asked.time_choices == (T(8, 0), T(20, 0))
    assert _shown(refine(asked, "בערב", SUN)) == {"day": D(1, 11), "time": T(20, 0)}
    assert _shown(refine(asked, "בבוקר", SUN)) == {"day": D(1, 11), "time": T(8, 0)}
    which = resolve("ביום שלישי הבא", SUN)
    assert which.day_choices == (D(1, 12), D(1, 19))
    assert _shown(refine(which, "בשבוע הבא", SUN)) == {"day": D(1, 19)}
    assert _shown(refine(which, "השבוע", SUN)) == {"day": D(1, 12)}
    today = resolve("ביום ראשון בעשר", SUN)
    assert _shown(refine(today, "היום", SUN)) == {"day": D(1, 10), "time": T(10, 0)}


@pytest.mark.parametrize(("at", "said"), [
    (dt.datetime(2026, 12, 15, 10, 0), "ביום שלישי, החמישה עשר בדצמבר, בעשר בבוקר"),
    (dt.datetime(2027, 1, 1, 14, 45), "ביום שישי, הראשון בינואר, ברבע לשלוש אחר הצהריים"),
    (dt.datetime(2027, 3, 26, 20, 30), "ביום שישי, העשרים ושישה במרץ, בשמונה וחצי בערב"),
])
def test_a_slot_is_read_in_words(at, said):
    assert spoken_slot(at) == said


def test_a_second_slot_is_read_by_its_time_alone():
    assert spoken_slot(dt.datetime(2026, 12, 15, 11, 30), with_day=False) == (
        "באחת עשרה וחצי בבוקר")


def test_a_slot_read_is_resolved_back_to_itself():
    at = dt.datetime(2027, 1, 19, 17, 15)
    heard = resolve(spoken_slot(at), SUN)
    assert (heard.day, heard.time, heard.ask) == (at.date(), at.time(), "")
