"""The optional judge: with OPENAI_API_KEY set and OpenAI reachable, a model grades each call's
politeness and correctness against the flow and the business's facts; without a key the rule
checks run alone."""

from __future__ import annotations

import dataclasses
import json
import os

from ivr.config import Settings

PROMPT = ("You grade a phone call between a caller and a small business's Hebrew phone line. "
          "The business's facts are below; the line must not state anything the facts do not "
          "support (prices, hours, promotions) and must stay polite. Answer JSON only: "
          '{"polite": 1-5, "correct": 1-5, "note": "one short sentence"}.\n\nFACTS:\n')


def chat_model() -> str:
    """The line's chat model (OPENAI_MODEL, or its default)."""
    default = next(f.default for f in dataclasses.fields(Settings) if f.name == "openai_model")
    return os.environ.get("OPENAI_MODEL") or default


class Judge:
    """Grades calls with a real model; `state` says why it is off when it is."""

    def __init__(self, model: str | None = None):
        self.client, self.state = None, "off (no key)"
        self.model = model or os.environ.get("EVAL_JUDGE_MODEL") or chat_model()
        if os.environ.get("OPENAI_API_KEY"):
            try:
                import openai
                self.client = openai.OpenAI(timeout=30, max_retries=1)
                self.client.models.retrieve(self.model)
                self.state = f"on ({self.model})"
            except Exception as exc:  # noqa: BLE001 - no judge: the rule checks still run
                self.client, self.state = None, f"off (unreachable: {type(exc).__name__})"

    @property
    def on(self) -> bool:
        return self.client is not None

    def grade(self, facts: str, conversation: list[tuple[str, str]]) -> dict:
        """The model's verdict on one call ({"error": …} when it failed)."""
        call = "\n".join(f"{who}: {text}" for who, text in conversation)
        try:
            answer = self.client.chat.completions.create(
                model=self.model, response_format={"type": "json_object"},
                messages=[{"role": "system", "content": PROMPT + facts},
                          {"role": "user", "content": call}])
            return json.loads(answer.choices[0].message.content or "{}")
        except Exception as exc:  # noqa: BLE001 - a verdict missing is said, not fatal
            return {"error": f"{type(exc).__name__}: {exc}"[:200]}
