"""A call's named state changes on SQLite and PostgreSQL: claims won once, fields that must hold."""

import threading

import pytest

from ivr.calls import HISTORY_KEEP, Calls
from ivr.store import Store, UnknownField

from .conftest import database_url

pytestmark = pytest.mark.usefixtures("database")

SID = "CA" + "b" * 32


@pytest.fixture
def calls(tmp_path):
    store = Store(database_url(tmp_path))
    yield Calls(store)
    store.close()


def test_a_call_answered_then_ended_keeps_its_outcome(calls):
    calls.note(SID, "AC" + "1" * 32, "+972501234567", "+97231234567")
    calls.answer(SID, "stream", "play", "ringing")
    call = calls.get(SID)  # deferred writes land before any read
    assert (call["turn"], call["turn_mode"], call["from_number"]) == (1, "stream", "+972501234567")
    calls.set_outcome(SID, "silent-hangup")
    calls.end(SID, "completed", 42)
    call = calls.get(SID)
    assert call["ended"] and call["ended_at"] and call["duration_sec"] == 42
    assert call["outcome"] == "silent-hangup" and call["status"] == "completed"


def test_advancing_a_turn_is_won_by_exactly_one_of_many(calls):
    calls.answer(SID, "stream", "play", "in-progress")
    wins = []
    threads = [threading.Thread(target=lambda: wins.append(calls.advance_turn(SID, 1)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wins.count(True) == 1 and calls.turn(SID) == 2
    assert not calls.advance_turn(SID, 1)  # a stale turn never moves the call


def test_record_fallback_is_claimed_once_and_clears_a_held_reply(calls):
    calls.answer(SID, "stream", "action", "in-progress")
    calls.hold_reply(SID, "<Response/>")
    assert calls.fall_back_to_record(SID, 1, "no stream start")
    assert not calls.fall_back_to_record(SID, 1, "a second watchdog")
    call = calls.get(SID)
    assert call["turn_mode"] == "record" and call["fallback_reason"] == "no stream start"
    assert calls.take_reply(SID) is None
    calls.note_record_mode(SID, "later reason")
    assert calls.get(SID)["fallback_reason"] == "no stream start"  # the first reason stays


def test_a_held_reply_is_taken_once(calls):
    calls.answer(SID, "stream", "action", "in-progress")
    calls.hold_reply(SID, "<Response><Play>x</Play></Response>")
    assert calls.take_reply(SID) == "<Response><Play>x</Play></Response>"
    assert calls.take_reply(SID) is None


def test_silent_turns_count_up_and_a_heard_turn_resets_them(calls):
    calls.answer(SID, "gather", "play", "in-progress")
    assert [calls.count_silent_turn(SID) for _ in range(2)] == [1, 2]
    assert calls.advance_webhook_turn(SID) == 2
    assert calls.count_silent_turn(SID) == 1


def test_a_stream_turn_marks_its_stream_started(calls):
    calls.answer(SID, "stream", "stream", "in-progress")
    assert calls.stream_started(SID, 1) and not calls.stream_started(SID, 1)
    calls.advance_stream_turn(SID, 2)
    call = calls.get(SID)
    assert call["turn"] == 2 and call["stream_started_turn"] == 2


def test_history_keeps_the_last_messages_only(calls):
    calls.answer(SID, "gather", "play", "in-progress")
    calls.change_history(SID, lambda h: h + [{"role": "user", "text": str(i)} for i in range(100)])
    kept = calls.history(SID)
    assert len(kept) == HISTORY_KEEP and kept[-1]["text"] == "99"


def test_a_field_the_table_does_not_have_is_an_error_not_a_silent_drop(calls):
    calls.answer(SID, "gather", "play", "in-progress")
    with pytest.raises(UnknownField):
        calls.store.update_call(SID, trun=2)


def test_text_fields_are_cut_to_their_column(calls):
    calls.note(SID, from_number="+" + "9" * 60_000)
    assert len(calls.get(SID)["from_number"]) == 64


def test_history_changes_from_many_writers_at_once_lose_no_message(calls):
    """Turns of one call recorded at once by two workers (two stores on one database) all land
    in the history."""
    calls.answer(SID, "stream", "play", "in-progress")
    other = Calls(Store(calls.store.engine.url.render_as_string(hide_password=False)))
    barrier, failures = threading.Barrier(8), []

    def add(i: int) -> None:
        barrier.wait()
        for j in range(2):
            for writer, end in ((calls, ""), (other, ".")):
                try:
                    writer.change_history(SID, lambda h, text=f"{i}.{j}{end}": h + [
                        {"role": "user", "text": text}])
                except Exception as exc:  # noqa: BLE001 - reported below
                    failures.append(exc)
    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(m["text"] for m in calls.history(SID)) == sorted(
        f"{i}.{j}{end}" for i in range(8) for j in range(2) for end in ("", "."))


def test_the_stream_start_watchdog_never_claims_a_call_whose_stream_started(calls):
    """The start was recorded between the watchdog's read and its claim: the start wins."""
    calls.answer(SID, "stream", "play", "in-progress")
    assert calls.advance_turn(SID, 1) and calls.stream_started(SID, 2)
    assert not calls.fall_back_to_record(SID, 2, "no stream start for turn 2", unstarted=True)
    assert calls.get(SID)["turn_mode"] == "stream"
    assert calls.fall_back_to_record(SID, 2, "no media for 6 s")


def at_once(step, times: int = 8) -> list:
    """`step()` from `times` threads at once; what each got."""
    results = []
    threads = [threading.Thread(target=lambda: results.append(step())) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_a_call_gets_its_transfers_and_no_more_whoever_races(calls):
    calls.answer(SID, "stream", "play", "in-progress")
    assert at_once(lambda: calls.claim_transfer(SID, 2)).count(True) == 2
    assert calls.get(SID)["transfers"] == 2 and not calls.claim_transfer(SID, 2)
    calls.give_back_transfer(SID)  # a transfer whose <Dial> never went out
    assert calls.claim_transfer(SID, 2) and not calls.claim_transfer(SID, 2)


def test_a_dial_result_is_acted_on_once_and_only_while_the_call_rings_the_owner(calls):
    calls.answer(SID, "gather", "play", "in-progress")
    assert calls.back_from_owner(SID, next_turn=True, dial_sid="CA" + "1" * 32) is None
    calls.hand_to_owner(SID)
    backs = at_once(lambda: calls.back_from_owner(SID, next_turn=True, dial_sid="CA" + "1" * 32))
    assert [b for b in backs if b] == [("gather", 2)] and calls.turn(SID) == 2
    assert not calls.owner_took_call(SID, "CA" + "1" * 32, "transferred")  # not ringing now
    calls.hand_to_owner(SID)  # a second transfer: its result is a new DialCallSid
    assert not calls.owner_took_call(SID, "CA" + "1" * 32, "transferred")  # the old one, again
    assert calls.owner_took_call(SID, "CA" + "2" * 32, "transferred")
    call = calls.get(SID)
    assert (call["turn_mode"], call["outcome"], call["turn"]) == ("owner", "transferred", 2)
