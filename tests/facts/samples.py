"""A small business's facts file for the facts tests, and where each of its entries is."""

from __future__ import annotations

from pathlib import Path

FACTS = """\
business: "מספרת רונית"
services:
  - name: "תספורת גברים"
    price: 80
    minutes: 30
  - name: "צבע שורשים"
    price: 220
    about: "כולל חפיפה."
hours: "פתוחים בימים ראשון עד חמישי 9:00-19:00, ובשישי 8:00-13:00."
address: "רחוב ביאליק 5 ברמת גן, ליד הקניון."
parking: "יש חניון ציבורי מתחת לקניון, והשעה הראשונה חינם ללקוחות שלנו."
policies:
  - "ביטול תור עד שלוש שעות לפני, בלי תשלום."
  - "אפשר לשלם במזומן, באשראי או בביט."
qa:
  - q: "אפשר להגיע עם כלב?"
    a: "כלבים קטנים מוזמנים, ברצועה."
  - q: "יש לכם מחירים מיוחדים לחיילים?"
    a: "חיילים בשירות סדיר מקבלים 15 אחוז הנחה בהצגת חוגר."
    source: "https://example.co.il/soldiers"
"""
LINES = {"services.0": 3, "services.1": 6, "hours": 9, "address": 10, "parking": 11,
         "policies.0": 13, "policies.1": 14, "qa.0": 16, "qa.1": 18}
PARKING = "יש חניון ציבורי מתחת לקניון, והשעה הראשונה חינם ללקוחות שלנו."


def facts_file(folder: Path, text: str = FACTS) -> Path:
    path = folder / "facts.yaml"
    path.write_text(text, encoding="utf-8")
    return path
