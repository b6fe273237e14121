"""`python -m ivr import-site URL`: a few pages of the owner's own site, fetched politely (same
host, robots.txt, a delay, page and size caps, one deadline), their text without navigation or
footers (trafilatura), written as passages with their URLs for the owner to review."""

from __future__ import annotations

import datetime as dt
import re
import time
import urllib.robotparser
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit

import lxml.html
import requests
import trafilatura
import yaml

from .facts import imported_entries

AGENT = "ivr-facts-importer"  # the name robots.txt rules address
USER_AGENT = f"{AGENT}/1.0 (a phone line reading its owner's site for the owner to review)"
REDIRECTS = 3  # robots.txt may move (http → https, another path) this many times
PASSAGE_CHARS = 400  # a list's items are joined into passages up to about this long
ITEM = re.compile(r"([-*+]|\d+\.|\|)\s")  # a block of list items or table rows (Markdown)
MARKUP = re.compile(r"^\s*(#+|[-*+]|\d+\.)\s+|\*\*|__|`|\s*\|\s*")  # said without it
RULE = re.compile(r"^[\s|:-]+$")  # a table's |---|---| line
HEADER = """\
# Passages imported from {site} on {day}, each with the page it came from.
# The line does not use a passage until you read it and set `reviewed: true` (edit its text
# as you like; delete what is wrong or not for callers). Importing again keeps every passage
# you reviewed, and replaces the others with what the site says then.
"""


@dataclass(frozen=True)
class Limits:
    """How much of a site one import reads, and how politely."""

    pages: int = 10
    page_bytes: int = 1_000_000
    deadline_sec: float = 60.0
    delay_sec: float = 1.0  # between two requests (more when robots.txt asks a Crawl-delay)


@dataclass
class Crawl:
    """What one import did: its passages (text, URL, title), the pages read and the ones
    skipped."""

    passages: list[tuple[str, str, str]] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (url, why)


@dataclass(frozen=True)
class Page:
    """One answer of the site: its status, Content-Type, redirect target and body."""

    status: int
    kind: str
    location: str
    body: bytes


class Fetcher:
    """HTTP GETs with the importer's User-Agent, a delay between them, and one deadline."""

    def __init__(self, limits: Limits):
        self.limits, self.session = limits, requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.ends = time.monotonic() + limits.deadline_sec
        self.last = 0.0
        self.delay = limits.delay_sec

    def left(self) -> float:
        return self.ends - time.monotonic()

    def get(self, url: str) -> Page | str:
        """The answer (its body within the size cap, redirects not followed), or why none."""
        wait = self.last + self.delay - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, max(self.left(), 0)))
        if self.left() <= 0:
            return "the import's deadline passed"
        try:
            with self.session.get(url, timeout=min(10.0, self.left()), stream=True,
                                  allow_redirects=False) as response:
                body = b""
                for chunk in response.iter_content(65536):
                    body += chunk
                    if len(body) > self.limits.page_bytes:
                        return f"larger than {self.limits.page_bytes} bytes"
                    if self.left() <= 0:
                        return "the import's deadline passed"
                return Page(response.status_code, response.headers.get("Content-Type", ""),
                            response.headers.get("Location", ""), body)
        except requests.RequestException as exc:
            return f"{type(exc).__name__}"
        finally:
            self.last = time.monotonic()  # the pause runs from the end of this request


def robots(fetcher: Fetcher, start: str) -> urllib.robotparser.RobotFileParser | str:
    """The site's robots.txt, read with the importer's User-Agent (none: everything allowed;
    401/403: nothing, as urllib.robotparser reads them), or why it could not be read."""
    parts = urlsplit(start)
    rules = urllib.robotparser.RobotFileParser(f"{parts.scheme}://{parts.netloc}/robots.txt")
    got = fetcher.get(rules.url)
    for _ in range(REDIRECTS):
        if isinstance(got, str) or not (300 <= got.status < 400 and got.location):
            break
        got = fetcher.get(urljoin(rules.url, got.location))
    if isinstance(got, str):
        return got
    if got.status >= 500 or got.status in (401, 403) or 300 <= got.status < 400:
        rules.disallow_all = True  # cannot tell what the owner allows: read nothing
    elif got.status >= 400:
        rules.allow_all = True
    else:
        rules.parse(got.body.decode("utf-8", "replace").splitlines())
    delay = rules.crawl_delay(AGENT)
    fetcher.delay = max(fetcher.delay, float(delay or 0))
    return rules


def links(html: bytes, url: str) -> list[str]:
    """The page's links as absolute URLs without their #fragment."""
    try:
        tree = lxml.html.fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        return []
    return [page_url(urljoin(url, href.strip())) for href in tree.xpath("//a/@href")]


def page_url(url: str) -> str:
    """`url` without its #fragment, and with "/" for an empty path (one page, one URL)."""
    parts = urlsplit(urldefrag(url)[0])
    return parts._replace(path=parts.path or "/").geturl()


def passages(markdown: str) -> list[tuple[str, str]]:
    """A page's text (trafilatura's Markdown) as passages (text, title): each paragraph, each
    list or table joined up to about PASSAGE_CHARS; the heading above it as its title."""
    out: list[tuple[str, str]] = []
    title, items = "", []

    def flush() -> None:
        if items:
            out.append(("; ".join(items) + ".", title))
            items.clear()
    for block in re.split(r"\n\s*\n", markdown):
        lines = [" ".join(MARKUP.sub(" ", ln).split()) for ln in block.splitlines()
                 if not RULE.match(ln)]
        lines = [ln for ln in lines if ln]
        if not lines:
            continue
        if block.lstrip().startswith("#"):
            flush()
            title = " ".join(lines)
        elif ITEM.match(block.lstrip()):
            for line in lines:
                if items and len("; ".join(items)) + len(line) > PASSAGE_CHARS:
                    flush()
                items.append(line.rstrip(".;,"))
        else:
            flush()
            out.append((" ".join(lines), title))
    flush()
    return out


def same_site(url: str, start: str) -> bool:
    a, b = urlsplit(url), urlsplit(start)
    return a.scheme in ("http", "https") and (a.hostname, a.port) == (b.hostname, b.port)


def crawl(start: str, limits: Limits = Limits()) -> Crawl:
    """Read up to `limits.pages` HTML pages of `start`'s site, breadth first from it."""
    start = page_url(start)
    fetcher, result = Fetcher(limits), Crawl()
    rules = robots(fetcher, start)
    if isinstance(rules, str):
        result.skipped.append((start, f"its robots.txt cannot be read: {rules}"))
        return result
    queue, seen, texts = deque([start]), {start}, set()
    while queue and len(result.fetched) < limits.pages and fetcher.left() > 0:
        url = queue.popleft()
        if not rules.can_fetch(AGENT, url):
            result.skipped.append((url, "robots.txt disallows it"))
            continue
        got = fetcher.get(url)
        if isinstance(got, str):
            result.skipped.append((url, got))
            continue
        if 300 <= got.status < 400 and got.location:
            found = [page_url(urljoin(url, got.location))]  # followed on the same site only
        elif got.status != 200 or "html" not in got.kind:
            result.skipped.append((url, f"HTTP {got.status} {got.kind}".strip()))
            continue
        else:
            result.fetched.append(url)
            found = links(got.body, url)
            text = trafilatura.extract(got.body, url=url, output_format="markdown",
                                       include_comments=False, include_tables=True) or ""
            for passage, title in passages(text):
                if passage not in texts:  # a block every page repeats: once
                    texts.add(passage)
                    result.passages.append((passage, url, title))
        for link in found:
            if link not in seen and same_site(link, start):
                seen.add(link)
                queue.append(link)
    return result


def write_review(path: Path, site: str, found: list[tuple[str, str, str]],
                 today: dt.date | None = None) -> int:
    """Write the review file: the passages the owner already reviewed, as they left them, then
    each new one (text, URL, title) with `reviewed: false`. Returns how many are new."""
    kept: list[dict] = []
    if path.exists():
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        kept = [{"source": url, "title": title, "text": text, "reviewed": True}
                for _, text, url, title, reviewed in imported_entries(data) if reviewed]
    known = {(p["source"], p["text"]) for p in kept}
    new = [{"source": url, "title": title, "text": text, "reviewed": False}
           for text, url, title in found if (url, text) not in known]
    day = (today or dt.date.today()).isoformat()
    body = yaml.safe_dump({"site": site, "imported": day, "passages": kept + new},
                          allow_unicode=True, sort_keys=False, width=100)
    path.write_text(HEADER.format(site=site, day=day) + body, encoding="utf-8")
    return len(new)
