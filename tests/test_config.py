"""Configuration: one declaration per variable, every bad variable reported at once, credentials
files written at start-up (not while reading), local mode."""

import dataclasses
import os
import re
import stat
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ivr.config import (
    LOCAL_ACCOUNT_SID,
    ROOT,
    ConfigError,
    Settings,
    env_fields,
    env_name,
    local_auth_token,
)


def env(tmp_path, **values):
    base = {"VAR_DIR": str(tmp_path / "var")}
    base.update(values)
    return base


def test_embedded_defaults_are_local_gather_scripted_espeak(tmp_path):
    s = Settings.from_env(env(tmp_path))
    assert s.public_base_url == "http://127.0.0.1:5000"
    assert s.local_mode and s.twilio_account_sid == LOCAL_ACCOUNT_SID
    assert s.validate_twilio_signature and len(s.twilio_auth_token) == 32
    assert (s.asr_engine, s.llm_engine, s.tts_engine) == ("none", "scripted", "espeak")
    assert s.turn_mode == "gather" and s.reply_mode == "play"
    assert s.twilio_api_base_url == "http://127.0.0.1:5001"  # the local carrier, PORT+1
    assert (s.min_utt_sec, s.vad_hangover_ms, s.vad_rms, s.max_utt_sec) == (0.48, 140, 210, 7.0)
    assert (s.barge_in, s.barge_in_voice_frames, s.dedup_window_sec) == (True, 3, 14.0)
    assert s.database_url.endswith("/var/ivr.sqlite3") and s.database_url.startswith("sqlite:////")


def test_local_token_is_kept_in_a_private_file_and_reused(tmp_path):
    first = Settings.from_env(env(tmp_path))
    second = Settings.from_env(env(tmp_path))
    assert first.twilio_auth_token == second.twilio_auth_token
    mode = os.stat(tmp_path / "var" / "emulator_auth_token").st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_several_bad_variables_are_reported_together(tmp_path):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env(tmp_path, VAD_RMS="loud", PORT="99999", BARGE_IN="maybe",
                              REPLY_MODE="fax", PUBLIC_BASE_URL="http://line.example.com",
                              RESP_MIN_DELAY_MS="500", RESP_MAX_DELAY_MS="100"))
    text = str(info.value)
    for name in ("VAD_RMS", "PORT", "BARGE_IN", "REPLY_MODE", "PUBLIC_BASE_URL",
                 "RESP_MIN_DELAY_MS"):
        assert name in text
    assert len(info.value.problems) == 6
    assert "expected one of play|action|stream" in text


def test_secret_values_never_appear_in_errors(tmp_path):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env(tmp_path, PUBLIC_BASE_URL="https://h.example",
                              TWILIO_ACCOUNT_SID="bogus", TWILIO_AUTH_TOKEN="supersecret-123"))
    assert "supersecret-123" not in str(info.value)
    assert "TWILIO_ACCOUNT_SID" in str(info.value)


def test_base_url_trailing_slash_is_removed(tmp_path):
    s = Settings.from_env(env(tmp_path, PUBLIC_BASE_URL="https://h.example/",
                              TWILIO_AUTH_TOKEN="t" * 32, TWILIO_ACCOUNT_SID="AC" + "2" * 32))
    assert s.public_base_url == "https://h.example"
    assert s.validate_twilio_signature and not s.local_mode


def test_unsigned_mode_needs_an_explicit_choice_and_warns(tmp_path):
    with pytest.raises(ConfigError, match="VALIDATE_TWILIO_SIGNATURE=true needs"):
        Settings.from_env(env(tmp_path, PUBLIC_BASE_URL="https://h.example",
                              VALIDATE_TWILIO_SIGNATURE="true"))
    s = Settings.from_env(env(tmp_path, PUBLIC_BASE_URL="https://h.example",
                              VALIDATE_TWILIO_SIGNATURE="false"))
    assert not s.validate_twilio_signature
    assert any("VALIDATE_TWILIO_SIGNATURE=false" in w for w in s.warnings)


GCP_JSON = '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----"}'


@pytest.fixture
def gcp_env(tmp_path, monkeypatch):
    """An environment with GCP_CREDENTIALS_JSON (no GOOGLE_APPLICATION_CREDENTIALS in ours)."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    return lambda text=GCP_JSON, **more: env(tmp_path, GCP_CREDENTIALS_JSON=text, **more)


def start(environment: dict) -> Settings:
    """Start-up as create_app does it: read and check, then prepare."""
    settings = Settings.from_env(environment)
    settings.prepare()
    return settings


def credential_files(tmp_path) -> list[str]:
    """Credential copies and leftover temporary files in VAR_DIR."""
    return sorted(n for n in os.listdir(tmp_path / "var") if "gcp" in n)


def test_gcp_credentials_json_is_written_to_a_private_file_at_start_up(tmp_path, gcp_env):
    s = Settings.from_env(gcp_env())
    path = s.google_application_credentials
    assert path == str(tmp_path / "var" / "gcp-credentials.json")
    assert (s.asr_engine, s.tts_engine, s.turn_mode) == ("google", "google", "stream")
    assert not os.path.exists(path)  # reading the environment writes nothing
    s.prepare()
    assert open(path).read() == GCP_JSON
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in os.environ  # the engines get it by path


def test_every_boot_shares_one_credentials_file_never_rewritten(tmp_path, gcp_env):
    paths = {start(gcp_env()).google_application_credentials for _ in range(5)}
    assert paths == {str(tmp_path / "var" / "gcp-credentials.json")}
    (path,) = paths
    assert credential_files(tmp_path) == ["gcp-credentials.json"]
    inode = os.stat(path).st_ino
    start(gcp_env())
    assert os.stat(path).st_ino == inode  # identical content: the file was left alone
    assert open(path).read() == GCP_JSON and stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_changed_credentials_json_replaces_the_one_file(tmp_path, gcp_env):
    path = start(gcp_env()).google_application_credentials
    rotated = GCP_JSON.replace("BEGIN", "NEW")
    # an environment that also names the file itself (as the old start-up exported it)
    s = start(gcp_env(rotated, GOOGLE_APPLICATION_CREDENTIALS=path))
    assert s.google_application_credentials == path
    assert open(path).read() == rotated and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert credential_files(tmp_path) == ["gcp-credentials.json"]


def test_a_loose_credentials_file_is_made_private(tmp_path, gcp_env):
    path = tmp_path / "var" / "gcp-credentials.json"
    path.parent.mkdir()
    path.write_text(GCP_JSON)
    path.chmod(0o644)
    start(gcp_env())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and path.read_text() == GCP_JSON


def test_a_var_dir_that_cannot_be_written_stops_start_up(tmp_path, gcp_env):
    (tmp_path / "var").write_text("a file where the folder should be")
    settings = Settings.from_env(gcp_env(PUBLIC_BASE_URL="https://h.example",
                                         VALIDATE_TWILIO_SIGNATURE="false"))
    with pytest.raises(ConfigError, match="GCP_CREDENTIALS_JSON=\\(set\\): cannot write") as info:
        settings.prepare()
    assert "BEGIN PRIVATE KEY" not in str(info.value)
    with pytest.raises(ConfigError, match="VAR_DIR=.*: cannot keep the emulator's token"):
        Settings.from_env(env(tmp_path))  # local mode


def test_reading_the_environment_writes_nothing_and_leaves_os_environ_alone(tmp_path, gcp_env):
    before = dict(os.environ)
    s = Settings.from_env(gcp_env(PUBLIC_BASE_URL="https://h.example",
                                  TWILIO_ACCOUNT_SID="AC" + "2" * 32, TWILIO_AUTH_TOKEN="t" * 32))
    assert s.asr_engine == "google" and not s.local_mode
    assert dict(os.environ) == before
    assert os.listdir(tmp_path) == []  # no VAR_DIR, no credentials file
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "emulator_auth_token").write_text("e" * 32)
    local = Settings.from_env(env(tmp_path))  # local mode reads the emulator's existing token
    assert local.local_mode and local.twilio_auth_token == "e" * 32
    assert os.listdir(tmp_path / "var") == ["emulator_auth_token"] and dict(os.environ) == before


def test_gcp_credentials_json_must_be_json(tmp_path):
    with pytest.raises(ConfigError, match="GCP_CREDENTIALS_JSON"):
        Settings.from_env(env(tmp_path, GCP_CREDENTIALS_JSON="not json"))


def test_openai_key_selects_openai_engines(tmp_path):
    s = Settings.from_env(env(tmp_path, OPENAI_API_KEY="sk-test"))
    assert (s.asr_engine, s.llm_engine, s.tts_engine, s.turn_mode) == (
        "openai", "openai", "openai", "stream")


def test_engine_without_its_key_is_an_error_that_says_what_to_set(tmp_path):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env(tmp_path, TTS_ENGINE="openai", TURN_MODE="stream"))
    assert "TTS_ENGINE=openai: set OPENAI_API_KEY" in str(info.value)
    assert "TURN_MODE=stream: needs an ASR engine" in str(info.value)


def test_retention_days_defaults_to_90_and_is_bounded(tmp_path):
    assert Settings.from_env(env(tmp_path)).retention_days == Settings().retention_days == 90
    assert Settings.from_env(env(tmp_path, RETENTION_DAYS="7")).retention_days == 7
    for bad in ("0", "3651", "soon"):
        with pytest.raises(ConfigError, match="RETENTION_DAYS"):
            Settings.from_env(env(tmp_path, RETENTION_DAYS=bad))


def test_each_variable_is_one_field_with_a_parser_and_one_line_of_help():
    names = [env_name(f) for f in env_fields()]
    assert len(names) == len(set(names))  # no two fields share a variable
    assert {f.name for f in dataclasses.fields(Settings)} - {n.lower() for n in names} == {
        "local_mode", "warnings", "stream_secret",  # resolved, not read
        "recording_storage_origins"}  # set by tests only (the emulator's storage stand-in)
    for f in env_fields():
        assert callable(f.metadata["parse"]), f.name
        help_text = f.metadata["help"]
        assert help_text.strip() and "\n" not in help_text and len(help_text) <= 80, f.name


def test_a_field_default_is_the_variables_default(tmp_path):
    """Setting every variable to its declared default changes nothing: one place says it."""
    def raw(value) -> str:
        return ("true" if value else "false") if isinstance(value, bool) else str(value)
    spelled = {env_name(f): raw(f.default) for f in env_fields()
               if f.default is not None and f.name != "var_dir"}
    unset, explicit = Settings.from_env(env(tmp_path)), Settings.from_env(env(tmp_path, **spelled))
    assert unset.replace(stream_secret="") == explicit.replace(stream_secret="")
    resolved = {"public_base_url", "twilio_account_sid", "twilio_auth_token",
                "twilio_api_base_url", "database_url", "asr_engine", "llm_engine", "tts_engine",
                "turn_mode", "validate_twilio_signature", "var_dir", "gather_language"}
    for f in env_fields():
        if f.name not in resolved:
            assert getattr(unset, f.name) == getattr(Settings(), f.name), f.name


def test_the_configuration_page_lists_exactly_the_declared_variables():
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    rows = [line.split("|")[1] for line in page.splitlines() if line.startswith("| `")]
    listed = [name for cell in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cell)]
    assert len(listed) == len(set(listed))
    assert set(listed) == {env_name(f) for f in env_fields()}


def test_two_processes_creating_the_emulator_token_at_once_agree(tmp_path):
    var = tmp_path / "var"
    gate = threading.Barrier(8)

    def race(_: int) -> str:
        gate.wait()
        return local_auth_token(var)
    with ThreadPoolExecutor(8) as pool:
        tokens = set(pool.map(race, range(8)))
    assert len(tokens) == 1 and tokens == {(var / "emulator_auth_token").read_text()}
    assert os.listdir(var) == ["emulator_auth_token"]  # no temporary file left behind
    assert stat.S_IMODE(os.stat(var / "emulator_auth_token").st_mode) == 0o600
    (var / "emulator_auth_token").write_text("")  # an empty file is replaced
    assert len(local_auth_token(var)) == 32


@pytest.mark.parametrize("url,accepted", [
    ("smtp://u:p@mail.example.com:587?starttls=true", True),
    ("smtps://u:p@mail.example.com:465", True),
    ("smtp://u:p@127.0.0.1:2525", True),  # this machine: nothing crosses a network
    ("smtp://u:p@mail.example.com:587", False),  # the password in clear to a remote host
    ("smtp://u:p@mail.example.com:587?starttls=false", False),
    ("smtp://u:p@mail.example.com:587?starttls=ture", False),  # a typo is not "false"
    ("smtp://u:p@127.0.0.1:2525?starttls=ture", False),
])
def test_smtp_reaches_a_remote_host_only_over_tls(tmp_path, url, accepted):
    if accepted:
        assert Settings.from_env(env(tmp_path, SMTP_URL=url)).smtp_url == url
        return
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env(tmp_path, SMTP_URL=url))
    assert str(info.value).count("SMTP_URL=(set)") == 1


def test_the_smtp_password_is_a_secret_as_written_and_as_sent(tmp_path):
    s = Settings.from_env(env(tmp_path, SMTP_URL="smtp://me:pa%2Fss%40w0rd@127.0.0.1:2525"))
    assert {"pa%2Fss%40w0rd", "pa/ss@w0rd"} <= set(s.secrets())


def test_every_instance_with_the_token_keys_the_mp3_names_alike(tmp_path):
    one, two = (Settings.from_env(env(tmp_path)) for _ in range(2))  # the local token file
    assert one.tts_name_key == two.tts_name_key and len(one.tts_name_key) == 32
    assert one.twilio_auth_token.encode() not in one.tts_name_key
    remote = {"PUBLIC_BASE_URL": "https://line.example.com", "TWILIO_ACCOUNT_SID": "AC" + "1" * 32}
    a = Settings.from_env(env(tmp_path / "a", TWILIO_AUTH_TOKEN="token-one-0123456789", **remote))
    b = Settings.from_env(env(tmp_path / "b", TWILIO_AUTH_TOKEN="token-one-0123456789", **remote))
    c = Settings.from_env(env(tmp_path / "c", TWILIO_AUTH_TOKEN="token-two-0123456789", **remote))
    assert a.tts_name_key == b.tts_name_key != c.tts_name_key


@pytest.mark.parametrize("account", [{"TWILIO_ACCOUNT_SID": "AC" + "3" * 32}, {}],
                         ids=["sid-no-token", "no-account"])
def test_signatures_off_for_want_of_a_token_are_said_so_not_blamed_on_a_setting(tmp_path,
                                                                               account):
    """VALIDATE_TWILIO_SIGNATURE was never set: the warning names the missing token."""
    s = Settings.from_env(env(tmp_path, PUBLIC_BASE_URL="https://h.example", **account))
    assert not s.validate_twilio_signature
    assert s.warnings == ("WARNING: webhook signatures are not checked: no TWILIO_AUTH_TOKEN is "
                          "set; anyone who finds this URL can drive calls",)


def test_a_refused_smtp_url_is_not_also_reported_missing(tmp_path):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env(tmp_path, NOTIFY_EMAIL_TO="owner@example.com",
                              SMTP_URL="smtp://user:pw@smtp.gmail.com:587"))
    assert info.value.problems == [
        "SMTP_URL=(set): plain SMTP to smtp.gmail.com would send the password and the messages "
        "unencrypted: add ?starttls=true or use smtps://"]
    with pytest.raises(ConfigError, match="NOTIFY_EMAIL_TO needs SMTP_URL"):
        Settings.from_env(env(tmp_path, NOTIFY_EMAIL_TO="owner@example.com"))
