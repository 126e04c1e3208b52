"""relayer/keeper/keeper.py `hold_for_intents`: an exit on a position an intent is in flight on waits
for the intent (the two would race, and one would revert) — case by case; and the claims the keeper
and the dispatcher of one process take on positions (relayer/intents/claims.py)."""

from __future__ import annotations

import threading

from relayer.intents.claims import PositionClaims
from relayer.keeper.keeper import Hold, hold_for_intents


def test_no_intent_in_flight_holds_nothing() -> None:
    assert hold_for_intents([1, 2], {}) == {}


def test_an_intent_on_another_position_holds_nothing() -> None:
    assert hold_for_intents([1, 2], {3: 40}) == {}


def test_an_intent_in_flight_holds_the_exit_on_its_position_only() -> None:
    held = hold_for_intents([1, 2], {2: 40})
    assert list(held) == [2]
    assert isinstance(held[2], Hold)
    assert "intent 40" in held[2].reason and "in flight" in held[2].reason


def test_an_intent_being_sent_holds_too() -> None:
    held = hold_for_intents([5], {5: None})
    assert "being sent" in held[5].reason


def test_claims_refuse_the_other_side() -> None:
    claims = PositionClaims()
    assert claims.claim_exits([1, 2]) == set()
    assert claims.claim_intents([2, 3]) == {2}  # 2 has an exit on its way; 3 is the intent's now
    assert claims.claim_exits([3, 4]) == {3}
    assert claims.exits() == {1, 2, 4} and claims.intents() == {3}
    claims.release_exits([2])
    assert claims.claim_intents([2]) == set()
    assert claims.intents() == {2, 3}


def test_intent_claims_count_several_intents_on_one_position() -> None:
    claims = PositionClaims()
    claims.claim_intents([7, 7])
    claims.release_intents([7])
    assert claims.claim_exits([7]) == {7}  # one intent on it is still being sent
    claims.release_intents([7])
    assert claims.claim_exits([7]) == set()


def test_claims_are_exclusive_across_threads() -> None:
    """The keeper's thread and two dispatcher threads claiming one position: never both sides at once."""
    claims = PositionClaims()
    both = threading.Event()
    stop = threading.Event()

    def exits() -> None:
        while not stop.is_set():
            if not claims.claim_exits([9]):
                if 9 in claims.intents():
                    both.set()
                claims.release_exits([9])

    def intents() -> None:
        while not stop.is_set():
            if not claims.claim_intents([9]):
                if 9 in claims.exits():
                    both.set()
                claims.release_intents([9])

    threads = [threading.Thread(target=f) for f in (exits, intents, intents)]
    for t in threads:
        t.start()
    stop.wait(0.3)
    stop.set()
    for t in threads:
        t.join()
    assert not both.is_set()
