"""A small site on loopback for the importer's tests: a few Hebrew pages with navigation and a
footer, a robots.txt, and a log of every request it was sent (path, User-Agent, when)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAV = """<header><nav><a href="/">בית</a> | <a href="/prices">מחירון</a> |
<a href="/about#team">עלינו</a> | <a href="/private/notes">למנהלים</a> |
<a href="{offsite}">הבלוג שלנו</a></nav></header>"""
FOOTER = """<footer><p>© כל הזכויות שמורות למספרת הדוגמה 2026 | תנאי שימוש | מדיניות פרטיות</p>
<p>עקבו אחרינו באינסטגרם ובפייסבוק</p></footer>"""
BODIES = {
    "/": """<h1>מספרת הדוגמה</h1>
<p>מספרת הדוגמה היא מספרה שכונתית בלב תל אביב, שפועלת כבר עשרים שנה. אנחנו מתמחים בתספורות
גברים, נשים וילדים, ובצבע ועיצוב שיער לאירועים. הצוות שלנו מקצועי, אדיב וסבלני.</p>
<h2>חניה</h2>
<p>יש חניון ציבורי ברחוב הרצל 20, דקה הליכה מהמספרה, והחניה בו חינם ללקוחות עד שעה.</p>""",
    "/prices": """<h1>מחירון</h1>
<p>תספורת גברים עולה 80 שקלים ונמשכת כחצי שעה. תספורת נשים עולה 150 שקלים, כולל חפיפה ופן.</p>
<p>צבע שורשים עולה 220 שקלים, וצבע מלא 320 שקלים. ילדים עד גיל 12 מקבלים הנחה של 20 אחוז.</p>""",
    "/about": """<h1>עלינו</h1>
<p id="team">את המספרה פתחה רונית לוי בשנת 2006, אחרי שנים של עבודה בסלונים בפריז ובלונדון.
היום עובדים איתה שלושה ספרים, וכולם עברו הכשרה בצבע ובעיצוב שיער כלה.</p>""",
    "/private/notes": """<h1>למנהלים</h1><p>סיסמת הקופה והמלאי החודשי: אסור לפרסם את זה.
הדף הזה לא מיועד ללקוחות ולא לרובוטים, ואין לאסוף אותו לשום מטרה.</p>""",
}
ROBOTS = "User-agent: *\nDisallow: /private/\n"
MOVED = "moved to "  # a body "moved to /new" is a 301 to /new


def page(body: str, offsite: str) -> bytes:
    return (f"<!doctype html><html lang='he' dir='rtl'><head><meta charset='utf-8'>"
            f"<title>מספרת הדוגמה</title></head><body>{NAV.format(offsite=offsite)}"
            f"<main><article>{body}</article></main>{FOOTER}</body></html>").encode()


class Site:
    """`Site(pages)` serves `pages` (path → HTML body, bytes, or MOVED + where) and ROBOTS on
    127.0.0.1;
    `requests`: (path, User-Agent, monotonic time) of each request, in order."""

    def __init__(self, bodies: dict[str, str | bytes] | None = None, offsite: str = "",
                 robots: str = ROBOTS):
        self.requests: list[tuple[str, str, float]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                site.requests.append((self.path, self.headers.get("User-Agent", ""),
                                      time.monotonic()))
                if self.path == "/robots.txt":
                    return self.answer(200, "text/plain", robots.encode())
                body = (bodies if bodies is not None else BODIES).get(self.path)
                if body is None:
                    return self.answer(404, "text/html", b"<p>not found</p>")
                if isinstance(body, str) and body.startswith(MOVED):
                    return self.answer(301, "text/html", b"", body[len(MOVED):])
                html = body if isinstance(body, bytes) else page(body, offsite or site.url)
                return self.answer(200, "text/html; charset=utf-8", html)

            def answer(self, status: int, kind: str, body: bytes, location: str = "") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def paths(self) -> list[str]:
        return [path for path, _, _ in self.requests]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
