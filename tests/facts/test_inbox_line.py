"""Done when (issue 25, the inbox): through the emulator on the scripted line, a question
outside the facts is in the owner's inbox once per call (asked twice, one row), grouped with the
same question from another call in other words; the owner writes the answer in a real browser
(Debian's chromium, headless, driven by Selenium through Debian's chromedriver) through the
inbox page's form; the next call asking it hears the owner's answer."""

from __future__ import annotations

import shutil

import pytest

from ..conftest import wait_until
from .test_facts_line import said_in_a_call

pytestmark = pytest.mark.live  # rings whole calls through the emulator, starts a browser

TOKEN = "inspector-token-0123"
ANSWER = "כן, אנחנו עושים החלקה יפנית, 600 שקל, כשלוש שעות."
ASKED = "אתם עושים החלקה יפנית?"
AGAIN = "שאלתי אם יש אצלכם החלקה יפנית"  # the same call, asked again in other words
OTHER_WORDS = "יש אצלכם החלקה יפנית?"  # another call


def browser(tmp_path):
    """Headless chromium driven by Selenium through Debian's chromedriver (no download)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.fail("Debian's chromium and chromium-driver are needed for this test: "
                    "apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)


def test_a_gap_is_answered_by_the_owner_in_the_browser_and_heard_on_the_next_call(
        phone_line, tmp_path):
    from selenium.webdriver.common.by import By

    line = phone_line(asr_engine="fake", llm_engine="scripted", tts_engine="fake",
                      turn_mode="stream", inspector_token=TOKEN)
    flow = line.runtime.engines.llm.flow
    assert said_in_a_call(line, ASKED, AGAIN) == [flow["clarify"], flow["menu"]]
    (group,) = line.runtime.inbox.groups()
    assert (group.calls, group.examples) == (1, [ASKED])  # asked twice in the call: one row
    assert said_in_a_call(line, OTHER_WORDS) == [flow["clarify"]]
    (group,) = line.runtime.inbox.groups()
    assert (group.calls, group.examples) == (2, [OTHER_WORDS, ASKED])

    driver = browser(tmp_path)
    try:
        driver.get(f"{line.url}/inspector/inbox?token={TOKEN}")  # the cookie, then the page
        section = driver.find_element(By.ID, f"g{group.id}")
        assert section.find_element(By.CLASS_NAME, "count").text == "2"
        assert [li.text for li in section.find_elements(By.CSS_SELECTOR, ".examples li")] \
            == [OTHER_WORDS, ASKED]
        section.find_element(By.NAME, "answer").send_keys(ANSWER)
        section.find_element(By.NAME, "save").click()
        shown = wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, f"#g{group.id} .answer"))
        assert shown[0].text == ANSWER
    finally:
        driver.quit()
    assert line.runtime.inbox.group(group.id).answer == ANSWER
    assert said_in_a_call(line, ASKED) == [ANSWER]  # the next call hears the owner's answer
    assert line.runtime.inbox.group(group.id).calls == 2  # answered: no longer a gap
