"""A call's state changes, each one named: the only code that writes a call's state columns.

The store is the truth about a call (any webhook or socket may land on any worker), so every
change that two parties could race for is a compare-and-set claim: exactly one of them wins.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

from .store import Store

HISTORY_KEEP = 40  # messages of the conversation kept with the call
HISTORY_TRIES = 20  # compare-and-set attempts of one history change


class Calls:
    """Reads a call and changes its state through named steps."""

    def __init__(self, store: Store):
        self.store = store
        self.history_lock = threading.Lock()  # this process's changes in turn: no retries

    # ---- reading ---------------------------------------------------------------------------
    def get(self, call_sid: str) -> dict | None:
        return self.store.get_call(call_sid)

    def turn(self, call_sid: str) -> int:
        """The call's current turn (0 for an unknown call)."""
        return (self.get(call_sid) or {}).get("turn") or 0

    def history(self, call_sid: str) -> list[dict]:
        return self.store.history(call_sid)

    def live(self, since: float) -> list[dict]:
        """Calls not ended and touched since `since`."""
        return self.store.live_calls(since)

    # ---- a call arrives and ends -----------------------------------------------------------
    def note(self, call_sid: str, account_sid: str = "", from_number: str = "",
             to_number: str = "") -> None:
        """Any webhook may be the first we hear of a call: create it, without waiting."""
        identity = {"account_sid": account_sid, "from_number": from_number,
                    "to_number": to_number}
        self.store.upsert_call(call_sid, **{k: v for k, v in identity.items() if v})

    def answer(self, call_sid: str, turn_mode: str, reply_mode: str, status: str) -> None:
        """incoming_call: the first turn begins (written without waiting for the database)."""
        self.store.upsert_call(call_sid, turn_mode=turn_mode, reply_mode=reply_mode, turn=1,
                               status=status)

    def ensure(self, call_sid: str) -> dict:
        """The call's row, created if no webhook has made it yet."""
        return self.store.ensure_call(call_sid)

    def end(self, call_sid: str, status: str, duration_sec: int | None) -> str:
        """Twilio says the call is over: close its record (made now if no webhook's row has
        landed: an end is never lost), keeping an earlier outcome. Returns the outcome the
        first time the call ends, "" for a repeated end (Twilio sent its status again)."""
        call = self.ensure(call_sid)
        outcome = call.get("outcome") or status
        closing = {"status": status, "ended": True, "ended_at": time.time(),
                   "duration_sec": duration_sec, "outcome": outcome}
        if not call.get("ended") and self.store.claim(call_sid, {"ended": call.get("ended")},
                                                      **closing):
            return outcome
        self.store.update_call(call_sid, **closing)
        return ""

    def set_status(self, call_sid: str, status: str) -> None:
        self.store.update_call(call_sid, status=status)

    # ---- turns -----------------------------------------------------------------------------
    def advance_turn(self, call_sid: str, turn: int) -> bool:
        """A live streaming call on `turn` moves to the next turn; True for the one who did."""
        return self.store.claim(call_sid, {"turn": turn, "turn_mode": "stream",
                                           "ended": False}, turn=turn + 1)

    def advance_stream_turn(self, call_sid: str, turn: int) -> None:
        """REPLY_MODE=stream: the same socket carries `turn` now, so its stream has started."""
        self.store.update_call(call_sid, turn=turn, stream_started_turn=turn)

    def advance_webhook_turn(self, call_sid: str) -> int:
        """Record or Gather heard something: the next turn, and no silent turns in a row."""
        turn = (self.ensure(call_sid).get("turn") or 0) + 1
        self.store.update_call(call_sid, turn=turn, silent_turns=0)
        return turn

    def caller_spoke(self, call_sid: str) -> None:
        """The stream heard the caller (or a key): no silent turns in a row."""
        if self.ensure(call_sid).get("silent_turns"):
            self.store.update_call(call_sid, silent_turns=0)

    def count_silent_turn(self, call_sid: str) -> int:
        """Nothing was heard this turn; how many turns in a row now."""
        silent = (self.ensure(call_sid).get("silent_turns") or 0) + 1
        self.store.update_call(call_sid, silent_turns=silent)
        return silent

    def set_outcome(self, call_sid: str, outcome: str) -> None:
        self.store.update_call(call_sid, outcome=outcome)

    def change_history(self, call_sid: str,
                       change: Callable[[list[dict]], list[dict] | None]) -> bool:
        """Apply `change` to the conversation as a compare-and-set: when another worker or
        instance wrote it meanwhile, read it again and reapply, so no message is ever lost.
        `change` returns the new history, or None to leave it be (then False). Changes from
        this process are taken one at a time, so only other processes' can make it retry."""
        with self.history_lock:
            return self._change_history(call_sid, change)

    def _change_history(self, call_sid: str,
                        change: Callable[[list[dict]], list[dict] | None]) -> bool:
        for _ in range(HISTORY_TRIES):
            call = self.get(call_sid)
            if call is None:
                return False
            history = change(json.loads(call["history"] or "[]"))
            if history is None:
                return False
            text = json.dumps(history[-HISTORY_KEEP:], ensure_ascii=False)
            if self.store.claim(call_sid, {"history": call["history"]}, history=text):
                return True
        raise RuntimeError(f"history of {call_sid} kept changing under {HISTORY_TRIES} tries")

    # ---- the stream ------------------------------------------------------------------------
    def stream_started(self, call_sid: str, turn: int) -> bool:
        """The stream of `turn` started (only ever moves forward)."""
        return self.store.claim_stream_start(call_sid, turn)

    def start_live_stream(self, call_sid: str, turn: int) -> bool:
        """The stream of `turn` started, recorded in one statement if the call is live and on
        that turn and its start not yet recorded; False otherwise (read the call to know why)."""
        return self.store.claim_stream_start(call_sid, turn, live_on_turn=True)

    def touch_media(self, call_sid: str, at: float) -> None:
        """Media arrived (written by the store's writer: the media loop never waits)."""
        self.touch_media_many({call_sid: at})

    def touch_media_many(self, times: dict[str, float]) -> None:
        """Media arrived on these calls: all in one statement, by the store's writer."""
        self.store.touch_media_many(times)

    def fall_back_to_record(self, call_sid: str, turn: int, reason: str,
                            unstarted: bool = False) -> bool:
        """Move a streaming call's `turn` to record mode; True only for the one who did.
        `unstarted`: only while that turn's stream has not started (a start recorded between
        the watchdog's read and its claim wins)."""
        return self.store.claim(call_sid, {"turn": turn, "turn_mode": "stream", "ended": False},
                                unstarted=turn if unstarted else None, turn_mode="record",
                                fallback_reason=reason[:200], pending_twiml=None)

    def claim_barge_over_play(self, call_sid: str, turn: int) -> bool:
        """A caller spoke over the Plays before `turn`'s stream (a fork heard it): True only
        while the call is still on those Plays (live, streaming, on `turn`, its stream not
        started). A call the watchdog moved to <Record>, or one that moved on, is left alone."""
        return self.store.claim(call_sid, {"turn": turn, "turn_mode": "stream", "ended": False},
                                unstarted=turn)

    def note_record_mode(self, call_sid: str, reason: str) -> None:
        """The call is in record mode whoever moved it; keep the first reason given."""
        first = (self.get(call_sid) or {}).get("fallback_reason") or reason
        self.store.update_call(call_sid, turn_mode="record", fallback_reason=first[:200])

    def recover_to_stream(self, call_sid: str) -> None:
        """RECOVER_TO_STREAM: after a recorded turn, listen on a stream again."""
        self.store.update_call(call_sid, turn_mode="stream")

    # ---- the owner's phone ---------------------------------------------------------------------
    def hand_to_owner(self, call_sid: str, mode: str | None = None) -> None:
        """The call is ringing the owner (`<Dial>`): not streaming, so no watchdog claim can
        move it; how it listened (`mode`, else as the row says) is kept for when the owner
        does not answer."""
        mode = mode or (self.get(call_sid) or {}).get("turn_mode") or ""
        if mode != "dial":
            self.store.update_call(call_sid, turn_mode="dial", mode_after_dial=mode)

    def claim_transfer(self, call_sid: str, limit: int) -> bool:
        """The caller asks for the owner: one more transfer, if the call has had fewer than
        `limit`; False (no ring) once it has had them."""
        for _ in range(HISTORY_TRIES):
            call = self.ensure(call_sid)
            done = call.get("transfers") or 0
            if done >= limit:
                return False
            if self.store.claim(call_sid, {"transfers": call.get("transfers")},
                                transfers=done + 1):
                return True
        return False

    def give_back_transfer(self, call_sid: str) -> None:
        """A transfer claimed for a reply that will not end in the owner's `<Dial>` (the reply
        failed, or the call could not be moved): it does not count."""
        for _ in range(HISTORY_TRIES):
            done = (self.get(call_sid) or {}).get("transfers") or 0
            if done == 0 or self.store.claim(call_sid, {"transfers": done},
                                             transfers=done - 1):
                return

    def owner_took_call(self, call_sid: str, dial_sid: str, outcome: str) -> bool:
        """The owner answered the `<Dial>` (`dial_sid`) the call is ringing: the call is theirs
        (`outcome`). False, changing nothing, when the call is not dialling or this result was
        acted on already (a replay)."""
        call = self.get(call_sid)
        return self._claim_dial(call, dial_sid, turn_mode="owner", outcome=outcome)

    def back_from_owner(self, call_sid: str, next_turn: bool,
                        dial_sid: str = "") -> tuple[str, int] | None:
        """The owner did not answer: the call listens as before, on its next turn when
        `next_turn` (a transfer ended a turn; ring-first comes before the first). Returns the
        mode and the turn; None, changing nothing, when the call is not dialling or this
        `<Dial>`'s result (`dial_sid`) was acted on already."""
        call = self.ensure(call_sid)
        mode = call.get("mode_after_dial") or call.get("turn_mode") or "record"
        mode = "record" if mode in ("dial", "owner") else mode
        turn = max((call.get("turn") or 0) + (1 if next_turn else 0), 1)
        if not self._claim_dial(call, dial_sid, turn_mode=mode, turn=turn, silent_turns=0):
            return None
        return mode, turn

    def _claim_dial(self, call: dict | None, dial_sid: str, **changes) -> bool:
        """Apply `changes` only while the call rings the owner and has not acted on `dial_sid`
        (a result without one is never taken for a replay): one winner, whoever races."""
        if call is None or call.get("turn_mode") != "dial" or (
                dial_sid and call.get("dial_sid") == dial_sid):
            return False
        return self.store.claim(call["call_sid"], {"turn_mode": "dial", "turn": call.get("turn"),
                                                   "dial_sid": call.get("dial_sid")},
                                dial_sid=dial_sid or None, **changes)

    # ---- replies waiting for Twilio's <Connect action> ----------------------------------------
    def hold_reply(self, call_sid: str, twiml: str) -> None:
        """The reply's TwiML, for stream_ended to answer when Twilio asks (action delivery)."""
        self.store.update_call(call_sid, pending_twiml=twiml)

    def take_reply(self, call_sid: str) -> str | None:
        """The held reply, taken once: a second request for it gets None."""
        pending = (self.get(call_sid) or {}).get("pending_twiml")
        if pending and self.store.claim(call_sid, {"pending_twiml": pending}, pending_twiml=None):
            return pending
        return None
