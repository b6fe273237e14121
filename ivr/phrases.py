"""The line's fixed sentences (Hebrew): what it says when it cannot say anything better."""

REPEAT_PROMPT = "אפשר לחזור על זה במשפט קצר?"  # nothing understood (no ASR text)
LLM_FALLBACK = "בסדר, איך אוכל לסייע?"  # the reply failed
DEDUP_REPLY = "הבנתי. תרצה שאפרט או להתקדם?"  # the same reply twice in a row
DEFAULT_GOODBYE = "תודה שהתקשרתם, להתראות."  # after MAX_SILENT_TURNS, unless the flow has one
THINKING_TEXT = "רגע, אני בודק."  # THINKING_HINT_MS: a reply is late
TRANSFERRING = "מעביר אותך לבעל העסק, רק רגע."  # a caller who asked for a person, in hours
OWNER_UNAVAILABLE = "בעל העסק לא זמין כרגע."  # the owner's phone did not answer
TAKE_MESSAGE = "אשמח לרשום הודעה. מה השם שלך?"  # unless the flow has its own lead.ask_name
DONT_KNOW = "אין לי מידע על זה. אפשר להשאיר הודעה, או לבקש לדבר עם נציג."  # not in the facts
CHECK_BACK = "אבדוק את זה ואחזור אליך."  # instead of a reply's figure the facts do not hold
