"""The line's fixed sentences (Hebrew): what it says when it cannot say anything better."""

REPEAT_PROMPT = "אפשר לחזור על זה במשפט קצר?"  # nothing understood (no ASR text)
LLM_FALLBACK = "בסדר, איך אוכל לסייע?"  # the reply failed
DEDUP_REPLY = "הבנתי. תרצה שאפרט או להתקדם?"  # the same reply twice in a row
DEFAULT_GOODBYE = "תודה שהתקשרתם, להתראות."  # after MAX_SILENT_TURNS, unless the flow has one
THINKING_TEXT = "רגע, אני בודק."  # THINKING_HINT_MS: a reply is late
