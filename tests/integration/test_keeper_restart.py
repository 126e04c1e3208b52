"""The keeper across a restart (found by the soak, bench/soak): an exit sent by one relayer process and
still pending when that process stops must be followed by the next one — not sent a second time while
it is in flight (SPEC §3), and not left in the audit trail as `sent` without an outcome (SPEC §3: what
was sent and how it ended). The next keeper finds the pending exit in the database when it starts
leading and counts it as in flight."""

from __future__ import annotations

import time

from .conftest import Api
from .test_api_restart import new_relayer
from .test_keeper import _exit_requests, _manual_mining, _mine, _open, _position, _rpc, _send_price, _wait


def test_an_exit_pending_across_a_restart_is_sent_once_and_its_outcome_audited(api: Api) -> None:
    agent_id, _ = api.agent(0)
    position_id = _open(api)
    with _manual_mining(api):
        _send_price(api, "NVDA", "160")  # from 182.35: about −12 %, through the −10 % stop
        _mine(api)
        _wait(lambda: len(_exit_requests(api)) == 1, "the keeper to send the exit")
        api.services.close()  # the relayer stops with its exit in the pool, not mined
        with new_relayer(api) as (services, client):
            # The next keeper leads once the old lease has expired (5 s on SQLite), then looks at every
            # token at its current price; the stop is still crossed and its exit still pending.
            time.sleep(8)
            _rpc(api, "evm_mine")
            _wait(lambda: services.state.positions[int(position_id)].open is False, "the exit to be indexed")
            time.sleep(1)
            requests = _exit_requests(api)
            position = client.get(f"/agents/{agent_id}/positions/{position_id}").json()
    assert [(r.status, r.purpose) for r in requests] == [("mined", "exit")], [
        (r.id, r.status, r.error) for r in requests
    ]
    actions = [(a["ruleIndex"], a["action"]) for a in position["audit"]]
    assert actions == [(1, "sent"), (1, "confirmed")], [
        (a["action"], a["outcome"]) for a in position["audit"]
    ]


def test_an_exit_mined_while_the_relayer_was_down_is_audited_as_confirmed(api: Api) -> None:
    """The exit is mined between the stop and the restart: the next process's sender settles its
    request at start, and the next keeper still records how it ended (found by the soak)."""
    agent_id, _ = api.agent(0)
    position_id = _open(api)
    with _manual_mining(api):
        _send_price(api, "NVDA", "160")
        _mine(api)
        _wait(lambda: len(_exit_requests(api)) == 1, "the keeper to send the exit")
        _wait(
            lambda: [a["action"] for a in _position(api, position_id)["audit"]] == ["sent"],
            "the keeper to audit the send",
        )
        api.services.close()
        _rpc(api, "evm_mine")  # mined while no relayer runs
    with new_relayer(api) as (_services, client):

        def actions() -> list[tuple[int, str]]:
            audit = client.get(f"/agents/{agent_id}/positions/{position_id}").json()["audit"]
            return [(a["ruleIndex"], a["action"]) for a in audit]

        _wait(lambda: actions() == [(1, "sent"), (1, "confirmed")], "the confirmation to be audited", 15)
        requests = _exit_requests(api)
    assert [(r.status, r.purpose) for r in requests] == [("mined", "exit")]
