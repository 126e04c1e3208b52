"""Deadlines judged against the time a transaction can be included (issue 13, High 1 and item 10).

A transaction sent now is included at the earliest in the next block: `chain_now()` is
max(wall clock, latest block + 1). A deadline with less than `DEADLINE_MARGIN_S` after that may pass
while the transaction travels, and the router would revert it after the gas is spent. A deadline
beyond the horizon would keep a signed intent valid for ever."""

from __future__ import annotations

from relayer.intents.checks import DEADLINE_MARGIN_S, MAX_DEADLINE_HORIZON_S
from tests.integration.test_api_idempotency import nonces_used
from tests.integration.test_api_rejections import LADDER, assert_error, nothing_sent, signed, submit

from .harness import Api

PARAMS = {"symbol": "NVDA", "usdcAmount": "100", "exits": LADDER}


def test_a_deadline_inside_the_inclusion_margin_is_refused_before_anything_is_sent(api: Api) -> None:
    """The probe's case: a deadline of 'now' (or one second after the earliest inclusion time) passes
    a check against the current second, is mined in the next one and reverts `DeadlineExpired`. It is
    refused with 422 `deadline_expired` and a deadline that would make it as a hint; nothing is sent."""
    agent_id, _ = api.agent(0)
    for ahead in range(DEADLINE_MARGIN_S):
        now = api.services.intents.chain_now()
        _q, body = signed(api, 0, "OpenPosition", message={"deadline": now + ahead}, **PARAMS)
        with nothing_sent(api):
            error = assert_error(submit(api, agent_id, "OpenPosition", body), 422, "deadline_expired")
        hint = error["details"]["suggestion"]["deadline"]
        assert hint >= error["details"]["now"] + DEADLINE_MARGIN_S, error
    # The hint works: signed again with it, the intent executes.
    _q, body = signed(api, 0, "OpenPosition", message={"deadline": hint}, **PARAMS)
    r = submit(api, agent_id, "OpenPosition", body)
    assert r.status_code == 201, r.text
    assert nonces_used(api, agent_id) == [0]


def test_a_deadline_beyond_the_horizon_is_refused(api: Api) -> None:
    """2²⁵⁶−1 (which the router would accept, so the signature would be valid for ever) and anything
    past the horizon are 400 `invalid_request` naming the field; the horizon itself is accepted."""
    agent_id, _ = api.agent(0)
    for deadline in (2**256 - 1, api.services.intents.chain_now() + MAX_DEADLINE_HORIZON_S + 60):
        _q, body = signed(api, 0, "OpenPosition", message={"deadline": deadline}, **PARAMS)
        with nothing_sent(api):
            error = assert_error(
                submit(api, agent_id, "OpenPosition", body), 400, "invalid_request", field="deadline"
            )
        assert "too far" in error["message"], error
    _q, body = signed(
        api,
        0,
        "OpenPosition",
        message={"deadline": api.services.intents.chain_now() + MAX_DEADLINE_HORIZON_S - 60},
        **PARAMS,
    )
    r = submit(api, agent_id, "OpenPosition", body)
    assert r.status_code == 201, r.text
    assert nonces_used(api, agent_id) == [0]
