"""`python -m ivr import-site` against a small site on loopback: passages with their URLs and
without the navigation and footer, robots.txt and the site's host kept to, the caps and the
delay between requests honoured, and the owner's review kept across imports."""

import pytest
import yaml

from ivr.cli import main
from ivr.facts.facts import IMPORTED, LiveFacts, Passage
from ivr.facts.importer import USER_AGENT, Limits, crawl, write_review
from ivr.facts.retrieval import Lookup

from .samples import facts_file
from .site import MOVED, Site

DELAY = 0.2  # seconds between two requests in these tests


@pytest.fixture
def sites():
    """The owner's site, and another host (localhost, another port) it links to."""
    other = Site({"/blog": "<p>a blog on another host</p>"})
    site = Site(offsite=other.url.replace("127.0.0.1", "localhost") + "/blog")
    yield site, other
    site.stop()
    other.stop()


def test_the_site_becomes_passages_with_their_urls_and_no_boilerplate(sites, tmp_path):
    site, other = sites
    out = tmp_path / IMPORTED
    assert main(["import-site", site.url + "/", "--delay", str(DELAY), "--out", str(out)]) == 0
    data = yaml.safe_load(out.read_text(encoding="utf-8"))
    passages = {p["text"]: p for p in data["passages"]}
    prices = next(p for text, p in passages.items() if "תספורת גברים עולה 80 שקלים" in text)
    assert prices["source"] == site.url + "/prices" and prices["reviewed"] is False
    parking = next(p for text, p in passages.items() if text.startswith("יש חניון ציבורי"))
    assert (parking["source"], parking["title"]) == (site.url + "/", "חניה")  # its heading
    assert any(p["source"] == site.url + "/about" for p in data["passages"])
    text = " ".join(passages)
    for boilerplate in ("כל הזכויות שמורות", "תנאי שימוש", "עקבו אחרינו", "מחירון |"):
        assert boilerplate not in text
    assert "סיסמת הקופה" not in text
    assert site.paths() == ["/robots.txt", "/", "/prices", "/about"]  # no /private/notes
    assert other.paths() == []  # the off-host link is not followed
    assert {agent for _, agent, _ in site.requests} == {USER_AGENT}
    times = [at for _, _, at in site.requests]
    assert all(b - a >= DELAY for a, b in zip(times, times[1:], strict=False))  # a pause


def test_the_page_and_size_caps_are_kept(tmp_path):
    big = b"<html><body><p>" + "מילה ".encode() * 300_000 + b"</p></body></html>"
    site = Site({"/": '<p><a href="/big">גדול</a> <a href="/a">א</a> <a href="/b">ב</a></p>',
                 "/big": big, "/a": "<p>א</p>", "/b": "<p>ב</p>"})
    try:
        result = crawl(site.url, Limits(pages=2, page_bytes=100_000, delay_sec=0))
    finally:
        site.stop()
    assert result.fetched == [site.url + "/", site.url + "/a"]
    assert (site.url + "/big", "larger than 100000 bytes") in result.skipped


def test_unreviewed_passages_are_not_used_and_a_new_import_keeps_the_owner_s_review(tmp_path):
    facts = LiveFacts(facts_file(tmp_path))
    review = tmp_path / IMPORTED
    found = [("המספרה נפתחה בשנת 2006.", "https://example.co.il/about", "עלינו"),
             ("צבע מלא 320 שקלים.", "https://example.co.il/prices", "מחירון")]
    assert write_review(review, "https://example.co.il", found) == 2
    assert "2006" not in facts.current().figures  # nothing reviewed yet
    review.write_text(review.read_text(encoding="utf-8").replace(
        "reviewed: false", "reviewed: true", 1), encoding="utf-8")
    assert "2006" in facts.current().figures and "320" not in facts.current().figures
    assert Lookup(facts)("מתי נפתחה המספרה?") == Passage(
        "המספרה נפתחה בשנת 2006.", "https://example.co.il/about", "עלינו")
    assert Lookup(facts)("כמה עולה צבע מלא?").source == "facts.yaml:6"  # not the unreviewed
    again = [("המספרה נפתחה בשנת 2006.", "https://example.co.il/about", "עלינו"),
             ("צבע מלא 350 שקלים.", "https://example.co.il/prices", "מחירון")]
    assert write_review(review, "https://example.co.il", again) == 1
    data = yaml.safe_load(review.read_text(encoding="utf-8"))
    assert [(p["text"], p["reviewed"]) for p in data["passages"]] == [
        ("המספרה נפתחה בשנת 2006.", True), ("צבע מלא 350 שקלים.", False)]
    assert review.read_text(encoding="utf-8").startswith("# Passages imported from")


def test_a_site_that_cannot_be_read_is_one_line_and_status_1(tmp_path, capsys):
    assert main(["import-site", "http://127.0.0.1:9/", "--out", str(tmp_path / "x.yaml"),
                 "--delay", "0", "--deadline", "5"]) == 1
    out = capsys.readouterr()
    assert "no page of http://127.0.0.1:9/ could be read" in out.err
    assert "skipped http://127.0.0.1:9/: its robots.txt cannot be read" in out.out
    assert main(["import-site", "ftp://example.com/"]) == 2


def test_a_redirect_is_followed_on_the_site_only(sites):
    site, other = sites
    moved = Site({"/": '<p><a href="/old">ישן</a> <a href="/away">רחוק</a></p>',
                  "/old": MOVED + "/new", "/new": "<p>חדש</p>",
                  "/away": MOVED + other.url.replace("127.0.0.1", "localhost") + "/blog"})
    try:
        result = crawl(moved.url, Limits(delay_sec=0))
    finally:
        moved.stop()
    assert result.fetched == [moved.url + "/", moved.url + "/new"]
    assert other.paths() == []
