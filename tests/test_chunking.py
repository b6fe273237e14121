"""A streamed reply cut into speakable chunks: sentences, long clauses, never inside a number."""

import itertools

from hypothesis import given
from hypothesis import strategies as st

from ivr.chunking import SpeakableChunks, speakable_chunks

REPLY = ("כן, בשמחה, אנחנו פתוחים היום עד שש בערב ומספר הפנייה שלך הוא 48213. ביום שישי אנחנו "
         "פתוחים עד אחת בצהריים, ואפשר לקבוע תור בטלפון או באתר. אם תרצה, אשמח לרשום אותך "
         "כבר עכשיו לתור הקרוב.")


def tokens(text: str, size: int = 4) -> list[str]:
    """The text as an LLM streams it: a few characters at a time."""
    return [text[i:i + size] for i in range(0, len(text), size)]


def test_the_first_chunk_comes_at_the_first_long_enough_clause():
    chunks = list(speakable_chunks(tokens(REPLY)))
    assert chunks == [
        "כן, בשמחה,",  # "כן," alone is too short; later clauses must be longer still
        "אנחנו פתוחים היום עד שש בערב",  # what follows an opener is short: ready before it ends
        "ומספר הפנייה שלך הוא 48213.",
        "ביום שישי אנחנו פתוחים עד אחת בצהריים, ואפשר לקבוע תור בטלפון או באתר.",
        "אם תרצה, אשמח לרשום אותך כבר עכשיו לתור הקרוב."]


def test_the_chunk_after_an_opener_ends_before_a_joining_word_or_at_a_space():
    chunker = SpeakableChunks()
    assert chunker.feed("בטח, בהחלט, אנחנו פתוחים היום עד שש ") == ["בטח, בהחלט,"]
    assert chunker.feed("בערב ומ") == ["אנחנו פתוחים היום עד שש בערב"]  # at "ו…", not later
    first, *rest = list(speakable_chunks(tokens(
        "כן, בשמחה, יש לנו תספורת גברים תספורת נשים צבע פן החלקה טיפול שורשים ועוד הרבה.")))
    assert rest == ["יש לנו תספורת גברים תספורת נשים צבע פן החלקה", "טיפול שורשים ועוד הרבה."]
    # a long first sentence leaves the next one time: it is cut as before
    assert list(speakable_chunks(tokens("בוקר טוב ותודה רבה על הפנייה. אנחנו פתוחים היום "
                                        "עד שש בערב ומספר הפנייה שלך הוא 48213."))) == [
        "בוקר טוב ותודה רבה על הפנייה.",
        "אנחנו פתוחים היום עד שש בערב ומספר הפנייה שלך הוא 48213."]


def test_a_chunk_is_out_as_soon_as_its_end_is_known():
    chunker = SpeakableChunks()
    assert chunker.feed("שלום רב, ותודה שהתקשרתם אלינו היום") == []
    assert chunker.feed(". מה") == ["שלום רב, ותודה שהתקשרתם אלינו היום."]
    assert chunker.finish() == ["מה"]


def test_a_long_first_clause_is_a_chunk_of_its_own():
    chunks = list(speakable_chunks(["בוקר טוב ותודה רבה על הפנייה שלך, ", "נבדוק מיד."]))
    assert chunks == ["בוקר טוב ותודה רבה על הפנייה שלך,", "נבדוק מיד."]


def test_numbers_times_and_prices_are_never_cut():
    text = "המחיר הוא 1,250.50 ₪ והשעות 8:00-18:00 בימים א-ה. תודה."
    assert list(speakable_chunks(tokens(text, 1))) == [
        "המחיר הוא 1,250.50 ₪ והשעות 8:00-18:00 בימים א-ה.", "תודה."]


def test_a_dash_before_a_number_is_a_range_not_a_pause():
    text = "אנחנו פתוחים 8:00 – 18:00 בכל יום, ובשישי 8:00 — 13:00."
    assert list(speakable_chunks(tokens(text, 1))) == [
        "אנחנו פתוחים 8:00 – 18:00 בכל יום,", "ובשישי 8:00 — 13:00."]
    assert list(speakable_chunks(tokens("בוקר טוב – נשמח לעזור.", 1))) == [
        "בוקר טוב –", "נשמח לעזור."]  # before words, a dash is still a pause


def test_a_reply_with_no_pause_is_cut_at_a_space():
    text = " ".join(["מילה"] * 100)
    chunks = list(speakable_chunks(tokens(text), max_chars=50))
    assert all(len(c) <= 50 for c in chunks) and " ".join(chunks) == text


@given(st.text(alphabet="אבג ,.?!:0123456789\n", max_size=300),
       st.integers(min_value=1, max_value=9))
def test_chunks_keep_every_word_in_order_however_the_stream_is_split(text, size):
    chunks = list(speakable_chunks(tokens(text, size)))
    assert all(c == c.strip() and c for c in chunks)
    assert "".join(text.split()) == "".join(itertools.chain.from_iterable(
        c.split() for c in chunks))
