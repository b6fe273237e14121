"""What an engine's failure means and how the owner fixes it: provider errors read by their types,
codes and ErrorInfo reasons (OpenAI, Google), then credentials, network, timeouts, local programs.

An engine may wrap a provider's error (EngineError from it): the whole chain of causes is read,
and the most telling rule that matches any error of it wins.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..config import Settings, env_fields, env_name
from .errors import Signal, signals, with_root

GOOGLE_SERVICES = {"asr": "speech.googleapis.com", "tts": "texttospeech.googleapis.com"}
GOOGLE_ENDPOINTS = {"asr": "google_speech_endpoint", "tts": "google_tts_endpoint"}
OPENAI_BILLING = "https://platform.openai.com/settings/organization/billing"
OPENAI_KEYS = "https://platform.openai.com/api-keys"
GOOGLE_KEYS = ("Google Cloud console → IAM & Admin → Service accounts → your account → Keys → "
               "Add key (JSON)")


@dataclass(frozen=True)
class Fault:
    """Why an engine failed, in a few words, and what the owner does about it."""

    cause: str
    fix: str


@dataclass(frozen=True)
class FailedEngine:
    """The engine a failure came from, as the fixes name it."""

    kind: str  # "asr", "llm" or "tts"
    name: str  # its ASR_ENGINE/LLM_ENGINE/TTS_ENGINE value: "openai", "google", "espeak", …
    model: str
    voice: str
    settings: Settings

    @property
    def provider(self) -> str:
        return next((p for p in ("openai", "google") if p in self.name), "")


def diagnose(exc: BaseException, engine: FailedEngine) -> tuple[Fault, str]:
    """The fault behind `exc` and a one-line account of the error that shows it."""
    chain = signals(exc)
    providers_first = sorted(chain, key=lambda s: not s.status)  # an engine's own words last
    for rule in RULES:
        for signal in providers_first:
            fault = rule(signal, engine)
            if fault is not None:
                return fault, with_root(signal.account, chain)
    first = chain[0]
    return Fault("failed", f"unexpected {engine.kind.upper()} failure: see the error; `python -m"
                           " ivr check` lists configuration problems"), with_root(first.account,
                                                                                 chain)


# ---- where and what to set -------------------------------------------------------------------
def endpoint(engine: FailedEngine) -> str:
    """The host the engine talks to, or the setting that moved it."""
    s = engine.settings
    if engine.provider == "openai":
        return f"OPENAI_BASE_URL={s.openai_base_url}" if s.openai_base_url else "api.openai.com"
    if engine.provider == "google":
        moved = getattr(s, GOOGLE_ENDPOINTS.get(engine.kind, ""), "")
        key = GOOGLE_ENDPOINTS.get(engine.kind, "").upper()
        return f"{key}={moved}" if moved else GOOGLE_SERVICES.get(engine.kind, "Google")
    return f"the {engine.name} engine's service"


def setting_with(engine: FailedEngine, value: str, word: str):
    """The field of the variable that holds `value` (a model, a voice) for this engine."""
    found = [f for f in env_fields() if value and word in f.name
             and getattr(engine.settings, f.name) == value]
    found.sort(key=lambda f: (not f.name.startswith(engine.provider), engine.kind not in f.name))
    return found[0] if found else None


UPGRADE = "upgrade the line (git pull; pip install -r requirements.txt)"


def choose(engine: FailedEngine, value: str, word: str, where: str) -> str:
    """"set OPENAI_MODEL=<its default>", or, when the default is the one refused, how else."""
    held = setting_with(engine, value, word)
    if held is None:
        return f"choose another {word} ({where})"
    if held.default != value:
        return f"set {env_name(held)}={held.default} (the line's current default)"
    return (f"set {env_name(held)} to a current {word} ({where}); this is the line's default "
            f"{word}, so {UPGRADE} as well")


def project_of(signal: Signal) -> str:
    consumer = str(signal.metadata.get("consumer", ""))
    found = re.search(r"(\d{6,})", consumer) or re.search(r"project\D{0,3}(\d{6,})",
                                                          signal.message)
    return found.group(1) if found else ""


def model_named(signal: Signal, engine: FailedEngine) -> str:
    found = re.findall(r"model `([^`]+)`", signal.message)
    return found[-1] if found else engine.model


# ---- the rules, most telling first -----------------------------------------------------------
Rule = Callable[[Signal, FailedEngine], "Fault | None"]


def openai_credit(s: Signal, e: FailedEngine) -> Fault | None:
    if "insufficient_quota" in s.codes or "exceeded your current quota" in s.message:
        return Fault("no credit (billing)", "the OpenAI account has no credit left or reached "
                     f"its budget: add credit or raise the budget at {OPENAI_BILLING}")
    return None


def google_api_disabled(s: Signal, e: FailedEngine) -> Fault | None:
    if "SERVICE_DISABLED" not in s.codes and not re.search(
            r"has not been used in project .*it is disabled", s.message):
        return None
    service = s.metadata.get("service") or GOOGLE_SERVICES.get(e.kind, "the API")
    project = project_of(s)
    url = s.metadata.get("activationUrl") or (
        f"https://console.developers.google.com/apis/api/{service}/overview"
        + (f"?project={project}" if project else ""))
    return Fault("API not enabled", f"enable {service} in Google Cloud project {project or '?'}:"
                 f" {url} (then wait a few minutes for it to take effect)")


def google_billing(s: Signal, e: FailedEngine) -> Fault | None:
    if "BILLING_DISABLED" not in s.codes and not re.search(
            r"requires billing|billing (is )?disabled|has billing disabled", s.message, re.I):
        return None
    project = project_of(s)
    return Fault("no billing", f"link a billing account to Google Cloud project {project or '?'}:"
                 f" https://console.developers.google.com/billing/enable?project={project}")


def bad_credentials(s: Signal, e: FailedEngine) -> Fault | None:
    refused = s.status == 401 or s.has("invalid_api_key", "credentials_refused",
                                       "UNAUTHENTICATED", "API_KEY_INVALID")
    if e.provider == "openai" and refused:
        if "Missing scopes" in s.message:
            return Fault("key lacks permission", "the restricted OpenAI key lacks a permission: "
                         f"give it Write on model capabilities ({OPENAI_KEYS}) or use a key "
                         "with All permissions")
        server = f" (or the key the server at OPENAI_BASE_URL={e.settings.openai_base_url} " \
                 "expects)" if e.settings.openai_base_url else ""
        return Fault("bad key", "OPENAI_API_KEY is wrong, revoked or of another organisation: "
                     f"create a key at {OPENAI_KEYS} and set OPENAI_API_KEY{server}")
    if e.provider == "google" and "credentials_file" in s.codes:
        return Fault("bad credentials file", f"{s.message}: set GCP_CREDENTIALS_JSON to the "
                     f"service account's JSON key ({GOOGLE_KEYS})")
    if e.provider == "google" and (refused or "invalid_grant" in s.message):
        if re.search(r"short-lived token|reasonable timeframe|iat and exp", s.message):
            return Fault("clock off", "Google refused the sign-in because this machine's clock "
                         "is wrong: synchronise it (NTP, e.g. timedatectl set-ntp true)")
        return Fault("bad key", "Google refused the credentials (a deleted or disabled key, a "
                     "revoked sign-in, another project's): create a service-account JSON key "
                     f"({GOOGLE_KEYS}) and put it in GCP_CREDENTIALS_JSON (or the file "
                     "GOOGLE_APPLICATION_CREDENTIALS names)")
    if refused:
        return Fault("credentials refused", f"the {e.name} service refused the credentials: "
                     "check the key or credentials this engine uses")
    return None


def openai_region(s: Signal, e: FailedEngine) -> Fault | None:
    if "unsupported_country_region_territory" in s.codes:
        return Fault("region not served", "OpenAI does not serve the country or region this "
                     "server is in: run the line where it does "
                     "(https://platform.openai.com/docs/supported-countries)")
    return None


def model_access(s: Signal, e: FailedEngine) -> Fault | None:
    if "model_not_found" in s.codes and (
            s.status == 403 or ("does not have access" in s.message and "Project" in s.message)):
        model = model_named(s, e)
        return Fault("no access to the model", f"the key's project may not use {model}: allow it "
                     "in the project's settings (platform.openai.com → Settings → Project → "
                     f"Limits), or {choose(e, model, 'model', 'https://platform.openai.com/docs/models')}")
    return None


def model_retired(s: Signal, e: FailedEngine) -> Fault | None:
    if not ("model_not_found" in s.codes or "has been deprecated" in s.message
            or s.status == 404 and "model" in s.message.lower()):
        return None
    model = model_named(s, e)
    return Fault("model retired or unknown", f"{e.provider or e.name} no longer serves (or never "
                 f"had) the model {model}: "
                 f"{choose(e, model, 'model', 'https://platform.openai.com/docs/deprecations')}")


def voice_refused(s: Signal, e: FailedEngine) -> Fault | None:
    if s.status != 400 or not ("param:voice" in s.codes or "voice" in s.message.lower()):
        return None
    lists = ("https://cloud.google.com/text-to-speech/docs/list-voices-and-types"
             if e.provider == "google" else "the provider's voice list")
    return Fault("voice not available", f"there is no voice {e.voice!r} for this request: "
                 f"{choose(e, e.voice, 'voice', lists)}")


def request_shape(s: Signal, e: FailedEngine) -> Fault | None:
    if not s.has("unsupported_parameter", "unsupported_value"):
        return None
    return Fault("request shape refused", f"the model {e.model} refuses the request the line "
                 f"sends: {UPGRADE} to send what current models accept, or "
                 f"{choose(e, e.model, 'model', 'https://platform.openai.com/docs/models')}")


def quota(s: Signal, e: FailedEngine) -> Fault | None:
    if s.status != 429 and "RESOURCE_EXHAUSTED" not in s.codes:
        return None
    if e.provider == "google":
        service = s.metadata.get("service") or GOOGLE_SERVICES.get(e.kind, "the API")
        return Fault("quota", f"the project's quota for {service} is used up: wait for it to "
                     "refill, or raise it in Google Cloud console → IAM & Admin → Quotas")
    return Fault("rate limit", "more requests than the account's limit allows: wait a minute; if "
                 "calls overlap, raise the usage tier (platform.openai.com → Settings → Limits)")


def permission(s: Signal, e: FailedEngine) -> Fault | None:
    if s.status != 403 and "PERMISSION_DENIED" not in s.codes:
        return None
    if e.provider == "google":
        return Fault("permission denied", "the service account may not use "
                     f"{GOOGLE_SERVICES.get(e.kind, 'this API')}: grant it access in the "
                     "project's IAM page, or use a service account of the project that has "
                     "the API enabled")
    return Fault("permission denied", f"the {e.name} service refused this key the request: "
                 "check the key's project and permissions")


def network(s: Signal, e: FailedEngine) -> Fault | None:
    if not s.has("network", "UNAVAILABLE", "DEADLINE_EXCEEDED"):
        return None
    sign_in = " or Google's sign-in (oauth2.googleapis.com)" if e.provider == "google" else ""
    return Fault("network", f"no answer from {endpoint(e)}{sign_in}: check this machine's "
                 "internet access and DNS, a proxy it needs (HTTPS_PROXY), and the address if "
                 "one is set")


def timeout(s: Signal, e: FailedEngine) -> Fault | None:
    if "timeout" not in s.codes:
        return None
    stage = f"{e.kind.upper()}_TIMEOUT_SEC"
    return Fault("timeout", f"{endpoint(e)} did not answer within {stage}="
                 f"{getattr(e.settings, stage.lower())}: check the network to it (a call would "
                 f"hear the fallback); if it is only slow, raise {stage}")


def provider_side(s: Signal, e: FailedEngine) -> Fault | None:
    if s.status < 500:
        return None
    page = "https://status.openai.com" if e.provider == "openai" else \
        "https://status.cloud.google.com"
    return Fault("provider error", f"{e.name} failed on its side: retry in a few minutes; "
                 f"see {page}")


def empty_answer(s: Signal, e: FailedEngine) -> Fault | None:
    if "EmptyAnswer" not in s.codes:
        return None
    return Fault("empty answer", "the engine answered with nothing usable: every turn would "
                 f"play the fallback; check its model and voice ({endpoint(e)})")


def program_missing(s: Signal, e: FailedEngine) -> Fault | None:
    if not re.search(r"not installed|No such file|ffmpeg|ffprobe|espeak", s.message):
        return None
    return Fault("program missing", "a program the engine runs is missing: "
                 "bash scripts/install_system_deps.sh (espeak-ng, ffmpeg)")


def refused_request(s: Signal, e: FailedEngine) -> Fault | None:
    if s.status != 400:
        return None
    return Fault("request refused", f"the {e.name} service refused the request: check the "
                 "engine's model, voice and LANGUAGE settings")


RULES: list[Rule] = [openai_credit, google_api_disabled, google_billing, bad_credentials,
                     openai_region, model_access, model_retired, voice_refused, request_shape,
                     quota, permission, network, timeout, provider_side, empty_answer,
                     program_missing, refused_request]
