"""Twilio's own warnings read back through the Monitor Alerts resource (the emulator's, with the
real twilio client): kept and logged once each with its fix, shown by the inspector and judged
by the doctor; a Hebrew <Gather> in the tag Twilio lists is heard and raises none."""

import logging
from types import SimpleNamespace

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from twilio.base.exceptions import TwilioRestException

from ivr import twilio_alerts
from ivr.delivery import rest_client
from ivr.doctor import Doctor
from ivr.twilio_alerts import Alert, about_this_line, check

SAID = "מה שעות הפתיחה?"
GATHER = {"asr_engine": "fake", "llm_engine": "fake", "tts_engine": "fake",
          "turn_mode": "gather"}


def read_alerts(line):
    rt = line.runtime
    return check(rt.settings, rt.store, rt.events)


def doctor_check(line, monkeypatch, token=None):
    monkeypatch.setenv("TWILIO_API_BASE_URL", line.carrier.url)
    s = line.runtime.settings
    doctor = Doctor(line.url, token or s.twilio_auth_token, s.twilio_account_sid)
    doctor.check_twilio_alerts()
    return doctor.results[0]


def gathered(line, call_sid):
    return [e["detail"]["speech"] for e in line.store.events(call_sid) if e["kind"] == "GATHER"]


def test_hebrew_gather_is_heard_in_the_tag_twilio_lists_and_raises_no_alert(phone_line,
                                                                            monkeypatch):
    line = phone_line(**GATHER)  # GATHER_LANGUAGE unset: iw-IL for LANGUAGE=he-IL
    result = line.carrier.place_call({"steps": [{"say": SAID}], "end": "hangup"})
    assert gathered(line, result.call_sid)[0] == SAID and result.error_codes == []
    assert read_alerts(line) == [] and line.carrier.alerts.codes() == []
    passed = doctor_check(line, monkeypatch)
    assert passed.ok and passed.detail == "none"


def test_a_gather_language_twilio_does_not_list_is_shown_with_its_fix(phone_line, monkeypatch):
    line = phone_line(**GATHER, gather_language="he-IL")
    result = line.carrier.place_call({"steps": [{"say": SAID}], "end": "hangup"})
    assert gathered(line, result.call_sid)[0] == ""  # Twilio heard nothing it could use
    assert "SILENT_TURN" in [e["kind"] for e in line.store.events(result.call_sid)]
    new = read_alerts(line)
    assert new and {a.code for a in new} == {13331}
    logged = [e["detail"] for e in line.store.events(result.call_sid)
              if e["kind"] == "TWILIO_ALERT"]
    assert len(logged) == len(new) and "GATHER_LANGUAGE" in logged[0]["fix"]
    assert read_alerts(line) == []  # each alert is logged once
    client = line.app.test_client()
    page = client.get("/inspector").get_data(as_text=True)
    assert "Twilio's warnings" in page and "13331" in page and "GATHER_LANGUAGE" in page
    call_page = client.get(f"/inspector/calls/{result.call_sid}").get_data(as_text=True)
    assert "GATHER_LANGUAGE" in call_page
    failed = doctor_check(line, monkeypatch)
    assert not failed.ok and "13331×" in failed.detail and "GATHER_LANGUAGE" in failed.fix


def test_a_warning_only_alert_is_listed_but_no_go_it_is_not(phone_line, monkeypatch):
    line = phone_line(**GATHER)
    result = line.carrier.place_call({"steps": [], "end": "hangup"})
    s = line.runtime.settings
    with pytest.raises(TwilioRestException):  # the caller hung up: Twilio refuses the update
        rest_client(s.twilio_account_sid, s.twilio_auth_token, s.twilio_api_base_url).calls(
            result.call_sid).update(twiml="<Response/>")
    (alert,) = read_alerts(line)
    assert alert.code == 21220 and alert.request_url.startswith("https://api.twilio.com/")
    assert not alert.fix.blocking
    warned = doctor_check(line, monkeypatch)
    assert warned.ok and "21220×1" in warned.detail and "warning 21220" in warned.detail


def test_reading_with_a_wrong_token_is_logged_never_raised_and_fails_the_doctor(phone_line,
                                                                               monkeypatch,
                                                                               caplog):
    line = phone_line(**GATHER)
    rt = line.runtime
    with caplog.at_level(logging.WARNING, logger="ivr"):
        assert check(rt.settings.replace(twilio_auth_token="wrong"), rt.store, rt.events) == []
    assert "TWILIO_ALERTS_ERR" in caplog.text and "HTTP 401" in caplog.text
    failed = doctor_check(line, monkeypatch, token="wrong")
    assert not failed.ok and "HTTP 401" in failed.detail and "TWILIO_AUTH_TOKEN" in failed.fix


@pytest.mark.parametrize("url,ours", [
    ("https://line.example.com/webhook/incoming_call", True),
    ("https://api.twilio.com/2010-04-01/Accounts/AC1/Calls/CA1.json", True),
    ("", True), ("https://another-app.example.com/voice", False)])
def test_only_alerts_about_this_line_are_read(url, ours):
    alert = Alert("NO1", 11200, "error", "", url, "", "", 0.0)
    assert about_this_line(alert, "line.example.com") is ours


def test_every_code_the_issue_names_has_a_fix_and_unknown_ones_point_at_twilio():
    for code in (13331, 13512, 11200, 12100, 12300, 31920, 31921, 31922, 31923, 31924, 15003,
                 21220):
        assert twilio_alerts.FIXES[code].text
    unknown = Alert("NO1", 99999, "error", "", "", "", "https://www.twilio.com/docs/errors/99999",
                    0.0)
    assert not unknown.fix.blocking and unknown.fix.text.endswith("/99999")


def test_the_daily_check_is_scheduled_only_with_credentials(settings):
    for creds, scheduled in ((settings, True), (settings.replace(twilio_auth_token=""), False)):
        scheduler = BackgroundScheduler()
        twilio_alerts.schedule_daily(SimpleNamespace(settings=creds, scheduler=scheduler,
                                                     store=None, events=None))
        job = scheduler.get_job(twilio_alerts.JOB_ID)
        assert (job is not None) is scheduled
        if job:
            assert job.trigger.interval.days == 1


def test_the_doctor_asks_real_twilio_about_a_remote_line_whatever_local_mode_says(monkeypatch,
                                                                                   tmp_path):
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_BASE_URL",
                 "PUBLIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VAR_DIR", str(tmp_path))  # local mode: the emulator's account
    asked = []
    monkeypatch.setattr("ivr.twilio_alerts.read", lambda client, host, since: asked.append(
        (client.monitor.base_url, host)) or [])
    doctor = Doctor("https://line.example.com", "token", "AC" + "2" * 32)
    doctor.check_twilio_alerts()
    assert asked == [("https://monitor.twilio.com", "line.example.com")] and doctor.results[0].ok
