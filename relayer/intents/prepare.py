"""Prepare: body → the signed intent rebuilt from the agent's registration → the checks of SPEC §2.4 on
the relayer's view → calldata. Shared by submit, the dispatcher, quotes and verify. No writes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from pydantic import ValidationError
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from relayer import eip712
from relayer.chain import calls
from relayer.chain.router import RouterClient
from relayer.domain.calendar import calendar_if_loaded
from relayer.domain.limits import AgentBook, apply_buy
from relayer.errors import RelayerError, invalid_request
from relayer.intents import checks
from relayer.intents.bodies import BODY_BY_TYPE, SubmitBody
from relayer.intents.build import Built, agent_of, build
from relayer.intents.lifecycle import HOLDS_NONCE
from relayer.state import AgentInfo, ChainState
from relayer.store.models import Intent

GAS_MARGIN: Final = 1.25
GAS_HEADROOM: Final = 30_000  # keeps the 63/64 rule from starving the venue/vault calls


def gas_limit(estimate: int) -> int:
    return int(estimate * GAS_MARGIN) + GAS_HEADROOM


def parse_body(primary_type: str, raw: Any) -> SubmitBody:
    model = BODY_BY_TYPE[primary_type]
    try:
        return model.model_validate(raw)  # type: ignore[return-value]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise invalid_request(f"{where}: {first['msg']}", field=where) from None


# Every quote and submit runs this: built once, on the table (Core, no ORM entities), with bound
# parameters — statement building and ORM row machinery were ~15 % of a quote's CPU.
_INTENTS = Intent.__table__.c
_IN_FLIGHT = (
    select(_INTENTS.nonce, _INTENTS.primary_type, _INTENTS.message)
    .where(
        _INTENTS.agent_id == bindparam("agent_id"),
        _INTENTS.status.in_([s.value for s in HOLDS_NONCE]),
        _INTENTS.nonce >= bindparam("next_nonce"),
    )
    .order_by(_INTENTS.nonce)
)


class Preparer:
    def __init__(
        self,
        *,
        state: ChainState,
        domain: eip712.Domain,
        router: RouterClient,
        can_pay: Callable[[int], bool],
        clock: Callable[[], float] = time.time,
        market_calendar: str = "XNYS",
    ) -> None:
        self.state = state
        self.domain = domain
        self.router = router
        self.can_pay = can_pay
        self.clock = clock
        self.market_calendar = market_calendar  # for a market_closed answer's nextOpen

    def chain_now(self) -> int:
        """When a transaction sent now executes: the next block, never before the last one + 1."""
        return max(int(self.clock()), self.state.block_timestamp + 1)

    def context(
        self, session: Session, agent: AgentInfo, now: int, *, before_nonce: int | None = None
    ) -> checks.Context:
        """`before_nonce`: count only the agent's live intents with a lower nonce (an intent checked
        again once it is approved, or right before it is sent, is judged behind its predecessors only)."""
        counters = self.state.counters_on(agent.agent_id, now)
        # In flight, pending approval, or confirmed in a block this process's indexer has not applied yet
        # (another replica's submit, or ours a moment ago): all move the nonce on and count against limits.
        live = session.execute(
            _IN_FLIGHT, {"agent_id": agent.agent_id, "next_nonce": counters.next_nonce}
        ).all()
        if before_nonce is not None:
            live = [r for r in live if r[0] < before_nonce]
        book = AgentBook(
            agent.allocation, counters.deployed, counters.turnover_today, counters.realized_pnl_today
        )
        expected = counters.next_nonce
        for nonce, primary_type, message in live:
            expected = max(expected, nonce + 1)
            if primary_type in ("OpenPosition", "AddToPosition"):
                book = apply_buy(book, int(message["usdcAmount"]))
        _name, track = self.state.tracks[agent.track_id]
        calendar = calendar_if_loaded(self.market_calendar)  # never waits: nextOpen is null meanwhile
        return checks.Context(self.state, self.domain, now, expected, book, track, calendar=calendar)

    def built(self, agent_id: int | str, primary_type: str, raw: Any, *, signed: bool = True) -> Built:
        body = parse_body(primary_type, raw)
        with self.state.read():
            agent = agent_of(self.state, agent_id)
            return build(body, agent, self.state, signed=signed)

    def first_failure(
        self, b: Built, ctx: checks.Context, *, signature_ok: bool = False
    ) -> RelayerError | None:
        """`signature_ok`: the caller recovered `b`'s signature already (the check is skipped)."""
        with self.state.read():
            return checks.first_failure(
                b, ctx, checks.UNSIGNED_CHECKS if signature_ok else checks.SIGNED_CHECKS
            )

    @staticmethod
    def calldata(b: Built) -> bytes:
        """The single-intent call (openPosition, addToPosition, …)."""
        assert b.signature is not None
        sig = b.signature.to_bytes()
        intent = b.intent
        if isinstance(intent, eip712.OpenPosition):
            return calls.open_position(intent, b.exits or (), sig)
        if isinstance(intent, eip712.AddToPosition):
            return calls.add_to_position(intent, sig)
        if isinstance(intent, eip712.ReducePosition):
            return calls.reduce_position(intent, sig)
        return calls.update_exit_ladder(intent, b.exits or (), sig)

    @staticmethod
    def batch_item(b: Built) -> tuple[object, ...]:
        """The intent as one `IntentCall` of executeIntents."""
        assert b.signature is not None
        return calls.intent_item(b.intent, b.exits, b.signature.to_bytes())

    # ------------------------------------------------------------------ facts about the node

    def ensure_chain(self) -> None:
        """503 while the node serves another chain than the one the relayer signs for: the EIP-712 domain
        (and the relayer's own transactions) carry the chain id, so neither an intent signed for the old
        id nor one for the new id can be relayed correctly until the two agree again. Asked afresh
        every time: a cached answer let an intent signed for the old id be recorded."""
        actual = self.router.chain_id()
        if actual != self.domain.chain_id:
            raise RelayerError(
                "chain_unavailable",
                f"the node now serves chain {actual}, but this relayer is configured for chain "
                f"{self.domain.chain_id}",
                {"reason": "chain_id_changed", "chainId": actual, "expectedChainId": self.domain.chain_id},
            )

    def ensure_funded(self, gas: int) -> None:
        """503 while the relayer's keys cannot pay for the transaction: nothing is recorded, so the agent
        retries later, rather than an intent accepted that cannot be sent."""
        if not self.can_pay(gas):
            raise RelayerError(
                "chain_unavailable",
                "the relayer cannot pay for gas at the moment; try again later",
                {"reason": "relayer_unfunded", "suggestion": {"retryAfterS": 2}},
            )
