"""The pinned openai SDK's model lists and shutdown dates, and what `check` and start-up make of
the configured models."""

from datetime import date

import pytest

from ivr.config import Settings
from ivr.engines import openai_models
from ivr.engines.openai_models import (
    configured_models,
    current_models,
    is_listed,
    model_list,
    model_notes,
    shutdown_date,
)

from ..conftest import make_settings


@pytest.mark.parametrize("model,day", [
    ("gpt-4o-mini", date(2027, 1, 14)), ("gpt-4.1", date(2027, 1, 14)),
    ("gpt-5", date(2026, 12, 11)), ("gpt-5-mini", date(2026, 12, 11)),
    ("gpt-5-nano", date(2026, 12, 11)), ("o3", date(2026, 12, 11)),
    ("gpt-5.4-nano", date(2027, 4, 1)), ("o1-mini-2024-09-12", date(2025, 10, 27)),
    ("gpt-4o-mini-transcribe", date(2027, 2, 26)), ("whisper-1", date(2027, 2, 26)),
    ("gpt-4o-mini-tts", date(2027, 1, 6)), ("tts-1-hd", date(2027, 1, 6)),
    ("gpt-realtime-mini", date(2027, 1, 20)),  # the realtime model list has its own notes
])
def test_the_sdk_s_announced_shutdown_dates(model, day):
    assert shutdown_date(model) == day


@pytest.mark.parametrize("model", ["gpt-6-luna", "gpt-5.4-mini", "gpt-transcribe",
                                   "gpt-realtime-2.1-mini", "no-such-model"])
def test_current_and_unknown_models_have_no_shutdown_date(model):
    assert shutdown_date(model) is None


def test_the_current_models_of_each_kind():
    chat = current_models("chat")
    assert {"gpt-6-luna", "gpt-5.4-mini", "gpt-5.5"} <= set(chat)
    assert not {"gpt-4o-mini", "gpt-5-mini", "gpt-5.4-nano", "gpt-5.1-mini"} & set(chat)
    assert current_models("transcription") == ["gpt-transcribe"]
    assert current_models("speech") == []  # every /v1/audio/speech model is to shut down
    assert "gpt-realtime-2.1-mini" in current_models("realtime")
    assert "gpt-realtime" not in current_models("realtime")


def test_a_listed_model_is_one_the_sdk_names_and_supports():
    assert is_listed("gpt-4o-mini", "chat") and not is_listed("gpt-4o-mini", "speech")
    assert not is_listed("gpt-5.1-mini", "chat")  # "Not a supported model ID"
    assert is_listed("gpt-transcribe", "transcription")
    assert not is_listed("gpt-7-imaginary", "chat")


def test_the_lists_are_read_once():
    assert model_list("chat") is model_list("chat")


def test_the_line_s_defaults_are_current_with_more_than_90_days_to_go():
    """DESIGN §4: defaults the pinned SDK does not mark for shutdown (a newer SDK that does
    fails here, so the defaults are chosen again)."""
    defaults = Settings()
    assert defaults.openai_model in current_models("chat")
    assert defaults.openai_asr_model in current_models("transcription")
    for kind in ("chat", "transcription", "realtime"):
        replacement = openai_models.REPLACEMENTS[kind]
        assert replacement in current_models(kind)


def openai_line(tmp_path, **changes):
    return make_settings(tmp_path, openai_api_key="sk-test", asr_engine="openai",
                         llm_engine="openai", tts_engine="openai", **changes)


def test_only_the_openai_engines_in_use_are_checked(tmp_path):
    settings = openai_line(tmp_path)
    assert configured_models(settings) == [
        ("transcription", "OPENAI_ASR_MODEL", "gpt-transcribe"),
        ("chat", "OPENAI_MODEL", "gpt-6-luna"),
        ("realtime", "OPENAI_TTS_MODEL", "gpt-realtime-2.1-mini")]  # the default speech
    assert configured_models(settings.replace(llm_engine="scripted", asr_engine="none",
                                              tts_engine="espeak")) == []
    assert configured_models(settings.replace(openai_tts_model="gpt-4o-mini-tts"))[2] == \
        ("speech", "OPENAI_TTS_MODEL", "gpt-4o-mini-tts")


def test_a_deprecated_model_is_a_warning_with_its_date_and_a_replacement(tmp_path):
    settings = openai_line(tmp_path, openai_model="gpt-4o-mini", openai_tts_model="gpt-realtime-2")
    (note,) = model_notes(settings, date(2027, 1, 4))
    assert (note.event, note.retired, note.refused) == ("MODEL_DEPRECATED", False, False)
    assert note.message() == ("WARNING: OPENAI_MODEL=gpt-4o-mini: OpenAI shuts this chat model "
                              "down on 2027-01-14 (in 10 days); use gpt-6-luna")
    assert note.detail() == {"kind": "chat", "model": "gpt-4o-mini", "date": "2027-01-14",
                             "setting": "OPENAI_MODEL", "replacement": "gpt-6-luna"}


@pytest.mark.parametrize("today", [date(2027, 2, 26), date(2027, 3, 1)])  # the day itself, after
def test_a_model_past_its_shutdown_is_refused_on_openai(tmp_path, today):
    settings = openai_line(tmp_path, openai_asr_model="gpt-4o-mini-transcribe",
                           openai_tts_model="gpt-realtime-2")
    (note,) = model_notes(settings, today)
    assert (note.event, note.refused) == ("MODEL_RETIRED", True)
    assert note.message() == ("OPENAI_ASR_MODEL=gpt-4o-mini-transcribe: OpenAI shut this "
                              "transcription model down on 2027-02-26; use gpt-transcribe")


def test_a_compatible_server_may_still_serve_a_retired_name(tmp_path):
    settings = openai_line(tmp_path, openai_model="gpt-4o-mini", openai_tts_model="gpt-realtime-2",
                           openai_base_url="https://llm.example.com/v1")
    (note,) = model_notes(settings, date(2027, 6, 1))
    assert note.retired and not note.refused
    assert "OPENAI_BASE_URL may still serve it, else use gpt-6-luna" in note.message()
    official = settings.replace(openai_base_url="https://api.openai.com/v1")
    assert model_notes(official, date(2027, 6, 1))[0].refused


def test_start_up_logs_a_retired_model_once_and_goes_on(tmp_path, caplog):
    """The line keeps answering (the engines fall back on each failed request); the owner reads
    MODEL_RETIRED in the log and the inspector's line events."""
    import logging

    from ivr.app import create_app
    settings = make_settings(tmp_path, openai_api_key="sk-test", llm_engine="openai",
                             openai_model="o1-mini")  # shut down 2025-10-27
    logging.getLogger("ivr").addHandler(caplog.handler)  # "ivr" does not propagate
    try:
        app = create_app(settings)
        events = [e for e in app.extensions["ivr"].store.events("")
                  if e["kind"].startswith("MODEL_")]
        app.extensions["ivr"].close()
    finally:
        logging.getLogger("ivr").removeHandler(caplog.handler)
    assert [(e["kind"], e["detail"]) for e in events] == [("MODEL_RETIRED", {
        "kind": "chat", "model": "o1-mini", "date": "2025-10-27", "setting": "OPENAI_MODEL",
        "replacement": "gpt-6-luna"})]
    records = {id(r): r for r in caplog.records if r.getMessage().startswith("MODEL_")}
    assert [(r.levelname, r.getMessage()) for r in records.values()] == [(
        "WARNING", "MODEL_RETIRED kind=chat model=o1-mini date=2025-10-27 setting=OPENAI_MODEL "
        "replacement=gpt-6-luna")]  # (a record may reach caplog's handler twice: kept once)
