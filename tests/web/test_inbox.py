"""The inspector's inbox page: the groups of questions the line could not answer, newest first,
with their counts, words and calls; the owner's answer through a form no other site can post."""

from __future__ import annotations

import html
import re

import pytest

from ivr.facts.facts import LiveFacts

from ..conftest import make_settings

TOKEN = "inspector-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CALL_A, CALL_B = "CA" + "a" * 32, "CA" + "b" * 32
ANSWER = "כן, אנחנו עושים החלקה יפנית, 600 ש\"ח."


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path, inspector_token=TOKEN)


@pytest.fixture
def asked(runtime):
    """Two calls asked one question in other words, and one another question since."""
    inbox = runtime.inbox
    first = inbox.record(CALL_A, "אתם עושים החלקה יפנית?", "not understood")
    inbox.record(CALL_B, "יש אצלכם החלקה יפנית?", "not understood")
    other = inbox.record(CALL_B, "יש לכם וויפיי?", "the line failed to answer")
    return first, other


def form_token(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_the_inbox_is_locked_like_the_inspector(client, asked):
    assert client.get("/inspector/inbox").status_code == 401
    first, _ = asked
    assert client.post(f"/inspector/inbox/{first}/answer", data={"answer": ANSWER}
                       ).status_code == 401


def test_the_groups_newest_first_with_counts_words_why_and_calls(client, asked):
    first, other = asked
    page = client.get("/inspector/inbox", headers=AUTH).get_data(as_text=True)
    assert page.index(f'id="g{other}"') < page.index(f'id="g{first}"')
    group = page[page.index(f'id="g{first}"'):]
    assert re.search(r'asked in <span class="count">2</span> calls', group)
    assert "<li>יש אצלכם החלקה יפנית?</li>" in group and "<li>אתם עושים החלקה יפנית?</li>" in group
    assert re.findall(r'href="/inspector/calls/(\w+)"', group)[:2] == [CALL_B, CALL_A]
    assert "(not understood)" in group
    assert "(the line failed to answer)" in page[:page.index(f'id="g{first}"')]
    assert "/inspector/inbox" in client.get("/inspector", headers=AUTH).get_data(as_text=True)


def test_the_owner_answers_edits_and_removes_through_the_form(client, asked, settings):
    first, _ = asked
    facts = LiveFacts.from_settings(settings)
    token = form_token(client.get("/inspector/inbox", headers=AUTH).get_data(as_text=True))
    sent = client.post(f"/inspector/inbox/{first}/answer", headers=AUTH,
                       data={"answer": ANSWER, "csrf_token": token})
    assert sent.status_code == 303 and sent.location.endswith(f"/inspector/inbox#g{first}")
    page = client.get("/inspector/inbox", headers=AUTH).get_data(as_text=True)
    assert f'<p class="summary he answer">{ANSWER}</p>' in html.unescape(page)
    assert [p.text for p in facts.current().passages if p.source == f"inbox:{first}"] == [ANSWER]
    client.post(f"/inspector/inbox/{first}/answer", headers=AUTH,
                data={"answer": "כן, 650 ש\"ח.", "csrf_token": token})
    assert [p.text for p in facts.current().passages if p.source.startswith("inbox:")] \
        == ["כן, 650 ש\"ח."]
    client.post(f"/inspector/inbox/{first}/remove", headers=AUTH, data={"csrf_token": token})
    assert facts.current().from_inbox == 0
    assert 'class="summary he answer"' not in client.get("/inspector/inbox", headers=AUTH
                                                         ).get_data(as_text=True)
    assert client.post(f"/inspector/inbox/{first}/delete", headers=AUTH,
                       data={"csrf_token": token}).status_code == 303
    assert f'id="g{first}"' not in client.get("/inspector/inbox", headers=AUTH
                                              ).get_data(as_text=True)
    assert client.post("/inspector/inbox/999/answer", headers=AUTH,
                       data={"answer": ANSWER, "csrf_token": token}).status_code == 404


@pytest.mark.parametrize("headers,status", [
    ({}, 400),  # no token in the form
    ({"Origin": "https://evil.example"}, 403),  # another site's form, with a token it stole
    ({"Sec-Fetch-Site": "cross-site"}, 403),
    ({"Origin": "null"}, 403),
])
def test_a_post_without_the_token_or_from_another_site_changes_nothing(client, asked, runtime,
                                                                      headers, status):
    first, _ = asked
    token = form_token(client.get("/inspector/inbox", headers=AUTH).get_data(as_text=True))
    data = {"answer": ANSWER, **({"csrf_token": token} if headers else {})}
    refused = client.post(f"/inspector/inbox/{first}/answer", headers={**AUTH, **headers},
                          data=data)
    assert refused.status_code == status
    assert runtime.inbox.group(first).answer == ""
    same_site = {"Origin": "https://line.example.com", "Sec-Fetch-Site": "same-origin"}
    assert client.post(f"/inspector/inbox/{first}/answer", headers={**AUTH, **same_site},
                       data={"answer": ANSWER, "csrf_token": token}).status_code == 303
    assert runtime.inbox.group(first).answer == ANSWER


def test_a_token_of_another_session_is_refused(app, client, asked):
    first, _ = asked
    other = app.test_client()
    token = form_token(other.get("/inspector/inbox", headers=AUTH).get_data(as_text=True))
    client.get("/inspector/inbox", headers=AUTH)
    assert client.post(f"/inspector/inbox/{first}/answer", headers=AUTH,
                       data={"answer": ANSWER, "csrf_token": token}).status_code == 400


def test_an_answer_too_long_to_say_is_refused(client, asked, runtime):
    first, _ = asked
    token = form_token(client.get("/inspector/inbox", headers=AUTH).get_data(as_text=True))
    assert client.post(f"/inspector/inbox/{first}/answer", headers=AUTH,
                       data={"answer": "א" * 1001, "csrf_token": token}).status_code == 400
    assert runtime.inbox.group(first).answer == ""
