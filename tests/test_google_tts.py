"""Google TTS voices: Standard (MP3) and Chirp 3: HD (streamed μ-law) through the real client."""

import pytest

from .test_engines_cloud import service_account_json


def google_settings(tmp_path, **env):
    from ivr.config import Settings
    return Settings.from_env({"VAR_DIR": str(tmp_path / "var"), "LLM_ENGINE": "fake",
                              "GCP_CREDENTIALS_JSON": service_account_json("a@b.iam"), **env})


@pytest.mark.parametrize("voice, problem", [
    ("he-IL-Chirp3HD-Kore", "did you mean he-IL-Chirp3-HD-Kore?"),
    ("he-il-standard-a", "did you mean he-IL-Standard-A?"),
    ("he-IL-Chirp3-HD-Korr", "Korr is not a Chirp 3: HD speaker (did you mean "
                             "he-IL-Chirp3-HD-Kore?)"),
    ("en-US-Chirp3-HD-Kore", "a en-US voice, but LANGUAGE=he-IL"),
    ("Kore", "expected <locale>-<type>-<name>"),
])
def test_a_mistyped_voice_is_refused_at_start_up(tmp_path, voice, problem):
    from ivr.config import ConfigError
    with pytest.raises(ConfigError) as refused:
        google_settings(tmp_path, GOOGLE_TTS_VOICE=voice)
    (line,) = refused.value.problems
    assert line.startswith(f"GOOGLE_TTS_VOICE={voice!r}: ") and problem in line


def test_a_voice_google_does_not_list_is_only_a_warning(tmp_path):
    settings = google_settings(tmp_path, GOOGLE_TTS_VOICE="he-IL-Neural2-A")
    assert any("he-IL-Neural2-A" in w and "no such he-IL voice" in w for w in settings.warnings)
    for voice in ("he-IL-Standard-D", "he-IL-Wavenet-B", "he-IL-Chirp3-HD-Zubenelgenubi"):
        assert google_settings(tmp_path, GOOGLE_TTS_VOICE=voice).warnings == ()


def test_the_voice_is_not_checked_when_google_does_not_speak(tmp_path):
    from ivr.config import Settings
    settings = Settings.from_env({"VAR_DIR": str(tmp_path / "var"), "TTS_ENGINE": "espeak",
                                  "GOOGLE_TTS_VOICE": "he-IL-Chirp3HD-Kore"})
    assert settings.tts_engine == "espeak" and settings.warnings == ()
