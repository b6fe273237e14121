"""The emulator where real Twilio differs from the happy path: Gather languages it does not list
(warning 13331, nothing heard), the Monitor Alerts resource read by the real `twilio` client, an
unsigned upgrade, the interrupted <Connect action> after an update, regional and redirected
recordings, and webhooks signed with a Webhooks SharedKey."""

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from ivr.sim import Carrier

from ..livehelpers import wait_until
from ..simapp import (  # noqa: F401 - fixture_line_served, carrier_of_fixture_line: the fixtures
    ACCOUNT,
    SPEED,
    TOKEN,
    FixtureLine,
    carrier_of_fixture_line,
    doc,
    fixture_line_served,
    read_until_stop,
    receive,
)

pytestmark = pytest.mark.live  # rings whole calls through the emulator

SAID = "מה שעות הפתיחה?"



def monitor(carrier, token: str = TOKEN) -> Client:
    """The real twilio client, its API and Monitor hosts on the emulator (as the line does)."""
    client = Client(ACCOUNT, token)
    client.api.base_url = client.monitor.base_url = carrier.url
    return client


def gather_call(line, carrier, language: str, **faults):
    line.docs["/webhook/incoming_call"] = doc(
        f'<Gather input="speech dtmf" language="{language}" action="{line.url}/gathered" '
        'speechTimeout="auto"><Say>מה תרצה?</Say></Gather>')
    line.docs["/gathered"] = doc("<Hangup/>")
    result = carrier.place_call({"steps": [{"say": SAID}], "end": "wait"}, **faults)
    return result, [r["form"] for r in line.requests if r["path"] == "/gathered"][0]


def test_a_hebrew_gather_in_the_listed_tag_is_heard(line, carrier):
    result, gathered = gather_call(line, carrier, "iw-IL")
    assert gathered["SpeechResult"] == SAID and result.error_codes == []
    assert carrier.alerts.codes() == []


def test_a_hebrew_gather_in_the_unlisted_tag_hears_nothing_and_raises_13331(line, carrier):
    result, gathered = gather_call(line, carrier, "he-IL")
    assert gathered["SpeechResult"] == "" and gathered["Confidence"] == "0.0"
    assert result.error_codes == [13331] and carrier.alerts.codes() == [13331]


def test_which_hebrew_tag_is_listed_is_configurable_both_ways(line, carrier):
    _, gathered = gather_call(line, carrier, "he-IL", gather_lists="he-IL")
    assert gathered["SpeechResult"] == SAID
    line.requests.clear()
    result, gathered = gather_call(line, carrier, "iw-IL", gather_lists="he-IL")
    assert gathered["SpeechResult"] == "" and result.error_codes == [13331]
    with pytest.raises(ValueError, match="gather_lists"):
        carrier.place_call({"steps": []}, gather_lists="en-US")


def test_a_language_without_a_region_is_13512(line, carrier):
    result, gathered = gather_call(line, carrier, "he")
    assert gathered["SpeechResult"] == "" and result.error_codes == [13512]


def test_keys_are_heard_whatever_the_language(line, carrier):
    line.docs["/webhook/incoming_call"] = doc(
        f'<Gather input="speech dtmf" language="he-IL" numDigits="1" action="{line.url}/g"/>')
    line.docs["/g"] = doc("<Hangup/>")
    carrier.place_call({"steps": [{"dtmf": "1"}], "end": "wait"})
    assert [r["form"]["Digits"] for r in line.requests if r["path"] == "/g"] == ["1"]


def test_monitor_alerts_lists_a_calls_warning_in_twilios_shape(line, carrier):
    result, _ = gather_call(line, carrier, "he-IL")
    (alert,) = monitor(carrier).monitor.v1.alerts.list(
        start_date=datetime.now(UTC) - timedelta(hours=1))
    assert alert.error_code == "13331" and alert.log_level == "warning"
    assert alert.resource_sid == result.call_sid and alert.account_sid == ACCOUNT
    assert alert.sid.startswith("NO") and len(alert.sid) == 34
    assert alert.request_url == f"{line.url}/webhook/incoming_call"  # the TwiML's URL
    assert "Msg=" in alert.alert_text and alert.more_info.endswith("/13331")
    assert alert.date_generated <= datetime.now(UTC)
    fetched = monitor(carrier).monitor.v1.alerts(alert.sid).fetch()
    assert fetched.error_code == "13331" and fetched.request_variables == ""


def test_monitor_alerts_filter_by_date_and_level_and_page(line, carrier):
    line.docs["/webhook/incoming_call"] = doc(f"<Play>{line.url}/media/x.txt</Play>",
                                              '<Gather input="speech" language="he-IL"/>')
    carrier.place_call({"steps": [{"silence": 1}], "end": "wait"})
    client = monitor(carrier).monitor.v1.alerts
    assert sorted(a.error_code for a in client.list()) == ["12300", "13331"]
    assert [a.error_code for a in client.list(log_level="error")] == ["12300"]
    assert client.list(start_date=datetime.now(UTC) + timedelta(minutes=5)) == []
    assert len(list(client.stream(page_size=1))) == 2  # the second page by its next_page_url


def test_monitor_refuses_a_wrong_token_like_twilio(carrier):
    with pytest.raises(TwilioException) as refused:  # a list page fails as TwilioException
        monitor(carrier, token="wrong").monitor.v1.alerts.list()
    response = refused.value.args[1]
    assert response.status_code == 401 and '"code":20003' in response.text.replace(" ", "")
    with pytest.raises(TwilioRestException) as fetch:
        monitor(carrier, token="wrong").monitor.v1.alerts("NO" + "0" * 32).fetch()
    assert fetch.value.status == 401 and fetch.value.code == 20003


def stream_doc(line, action=True):
    act = f' action="{line.url}/stream_ended?turn=1"' if action else ""
    return doc(f'<Connect{act}><Stream url="{line.wss}">'
               '<Parameter name="turn" value="1"/></Stream></Connect>')


def test_the_unsigned_upgrade_fault_opens_the_socket_without_a_signature(line, carrier):
    line.docs["/webhook/incoming_call"] = stream_doc(line, action=False)
    carrier.place_call({"steps": [{"silence": 1}], "end": "hangup"}, ws_unsigned=True)
    session = line.session()
    assert session["signed"] is False and [m["event"] for m in session["messages"][:2]] == [
        "connected", "start"]


def test_the_stale_action_fault_requests_the_interrupted_connect_action(line, carrier):
    client = monitor(carrier)

    def update_when_streaming(ws, session):
        receive(ws, session)
        call_sid = receive(ws, session)["start"]["callSid"]
        client.calls(call_sid).update(twiml=doc('<Pause length="1"/>', "<Hangup/>"))
        read_until_stop(ws, session)
    line.on_socket = update_when_streaming
    line.docs["/webhook/incoming_call"] = stream_doc(line)
    line.docs["/stream_ended"] = doc("<Say>לא מושמע</Say>")
    result = carrier.place_call({"steps": [{"silence": 5}], "end": "wait"}, stale_action=True)
    stale = wait_until(lambda: [r for r in line.requests if r["path"] == "/stream_ended"])
    assert stale[0]["form"]["StreamSid"].startswith("MZ") and stale[0]["signed"]
    assert [h["kind"] for h in result.heard] == []  # its answer is not run: the update's TwiML is


def record_call(line, carrier, **faults):
    line.docs["/webhook/incoming_call"] = doc(
        f'<Record action="{line.url}/recorded" timeout="1" playBeep="false"/>')
    line.docs["/recorded"] = doc("<Hangup/>")
    carrier.place_call({"steps": [{"say": "שלום"}], "end": "wait"}, **faults)
    return [r["form"] for r in line.requests if r["path"] == "/recorded"][0]["RecordingUrl"]


def test_the_regional_fault_names_a_regional_api_host_the_emulator_serves(line, carrier):
    url = record_call(line, carrier, recording_regional=True)
    parts = urlsplit(url)
    assert (parts.scheme, parts.hostname) == ("https", "api.dublin.ie1.twilio.com")
    wav = requests.get(carrier.url + parts.path, auth=(ACCOUNT, TOKEN), timeout=10)
    assert wav.status_code == 200 and wav.headers["Content-Type"] == "audio/x-wav"


def test_a_redirected_recording_is_served_by_pre_signed_storage_only(line, carrier):
    url = record_call(line, carrier, recording_redirect="storage")
    first = requests.get(url, auth=(ACCOUNT, TOKEN), allow_redirects=False, timeout=10)
    where = first.headers["Location"]
    assert first.status_code == 302 and where.startswith(carrier.storage.url)
    assert "X-Amz-Signature=" in where
    assert requests.get(where, timeout=10).headers["Content-Type"] == "audio/x-wav"
    with_auth = requests.get(where, auth=(ACCOUNT, TOKEN), timeout=10)  # S3: one auth only
    assert with_auth.status_code == 400 and b"InvalidArgument" in with_auth.content
    assert requests.get(where.replace("X-Amz-Expires=300", "X-Amz-Expires=999"),
                        timeout=10).status_code == 403  # altered: the signature fails
    assert requests.get(where.split("?")[0], timeout=10).status_code == 403  # unsigned


def test_the_unsigned_storage_fault_redirects_to_a_url_storage_refuses(line, carrier):
    url = record_call(line, carrier, recording_redirect="unsigned")
    first = requests.get(url, auth=(ACCOUNT, TOKEN), allow_redirects=False, timeout=10)
    assert "X-Amz-Signature" not in first.headers["Location"]
    assert requests.get(first.headers["Location"], timeout=10).status_code == 403


def test_a_shared_key_signs_webhooks_and_the_upgrade_in_its_algorithm(line):
    secret = "shared-key-secret-0123456789"
    with Carrier(line.url, account_sid=ACCOUNT, auth_token=TOKEN, speed=SPEED, status_callback="",
                 shared_key=("KSemulator", secret, "HMAC_SHA256")) as carrier:
        line.docs["/webhook/incoming_call"] = doc(f'<Redirect>{line.url}/next</Redirect>')
        line.docs["/next"] = doc("<Hangup/>")
        carrier.place_call({"steps": [], "end": "wait"})
    assert [r["signed"] for r in line.requests] == [False, False]  # not with the auth token
    signed = line.last_headers
    assert signed["X-Twilio-Webhooks-Signature-Settings"] == "key=KSemulator,algorithm=HMAC_SHA256"
    assert RequestValidator(secret).validate(f"{line.url}/next", line.requests[-1]["form"],
                                             signed["X-Twilio-Signature"], "HMAC_SHA256")
