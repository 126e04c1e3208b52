"""`RouterClient`: the relayer's one seam to the `TradeRouter` — simulate (gas, or a decoded revert
with a kind to match on), simulate batches item by item, receipts, replays of reverted
transactions, and which intent used an agent's nonce (from the index, not a log scan from block 0).

Everything goes through raw JSON-RPC (`chain.rpc`), so no web3 result formatting runs on a hot path,
and every transport failure arrives as `ChainUnavailableError` (`rpc.transport_errors`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3

from relayer.chain import calls, rpc
from relayer.chain.events import DecodedLog, EventDecoder
from relayer.chain.reverts import DecodedRevert, RevertDecoder
from relayer.domain.market import MarketStatus
from relayer.errors import CODE_BY_REVERT, RelayerError
from relayer.store import mirror
from relayer.store.models import NonceUse

log = logging.getLogger("alphagrid.router")


class RevertKind(StrEnum):
    NONCE = "nonce"  # NonceMismatch: the agent's nonce moved on
    EXPIRED = "expired"  # DeadlineExpired
    PAUSED = "paused"  # the router is paused
    STALE_PRICE = "stale_price"  # OraclePriceStale: a fresh price may come
    NOT_TRIGGERED = "not_triggered"  # ExitNotTriggered: the price is back on the right side
    POSITION_CLOSED = "position_closed"  # PositionNotOpen / PositionNotFound
    OUT_OF_GAS = "out_of_gas"  # no revert data: out of gas (or an invalid opcode)
    REFUSED = "refused"  # any other custom error: as signed, it will not pass

    @property
    def transient(self) -> bool:
        """Whether the same call may pass later without anyone signing anything new."""
        return self in (RevertKind.PAUSED, RevertKind.STALE_PRICE, RevertKind.OUT_OF_GAS)


_KIND_BY_NAME: Final[Mapping[str, RevertKind]] = {
    "NonceMismatch": RevertKind.NONCE,
    "DeadlineExpired": RevertKind.EXPIRED,
    "EnforcedPause": RevertKind.PAUSED,
    "OraclePriceStale": RevertKind.STALE_PRICE,
    "ExitNotTriggered": RevertKind.NOT_TRIGGERED,
    "PositionNotOpen": RevertKind.POSITION_CLOSED,
    "PositionNotFound": RevertKind.POSITION_CLOSED,
    "EmptyRevert": RevertKind.OUT_OF_GAS,
}


@dataclass(frozen=True)
class Revert:
    """A router call that would revert (or did): the custom error, decoded."""

    decoded: DecodedRevert

    @property
    def name(self) -> str:
        return self.decoded.name

    @property
    def kind(self) -> RevertKind:
        return _KIND_BY_NAME.get(self.decoded.name, RevertKind.REFUSED)

    @property
    def code(self) -> str:
        """The API's error code for it (SPEC §2.1)."""
        return CODE_BY_REVERT.get(self.decoded.name, "simulation_failed")

    def error(self) -> RelayerError:
        details: dict[str, Any] = {"revert": self.decoded.to_json()}
        if self.code == "nonce_mismatch" and "expected" in self.decoded.args:
            details["expected"] = self.decoded.args["expected"]
        if self.code == "market_closed":
            # SPEC §5.6's details; the chain says which status, not when the market opens again.
            status = (
                MarketStatus.HALTED
                if self.name == "MarketHalted"
                else MarketStatus(self.decoded.args["status"])
            )
            details.update(marketStatus=status.label, nextOpen=None)
        return RelayerError(self.code, f"the router would revert: {self.name}", details)

    def describe(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.decoded.to_json()["args"].items())
        return f"{self.name}({args})"


class RouterRevertedError(Exception):
    def __init__(self, revert: Revert) -> None:
        super().__init__(revert.describe())
        self.revert = revert


@dataclass(frozen=True)
class Simulation:
    """A call that would succeed: its return data, and the gas it used where the node measured it in
    the same run (`eth_simulateV1`); None: `gas_needed` asks the node for an estimate."""

    output: bytes
    gas_used: int | None


# EIP-3529 caps a refund at a fifth of the gas used before it: the gas a call consumes while it runs
# is at most 5/4 of what it is charged. And 64/63: the deepest call must still get what it consumed.
def gas_from_used(gas_used: int) -> int:
    """A gas limit under which a call that was charged `gas_used` runs as it did."""
    return -(-gas_used * 5 * 64 // (4 * 63)) + 2_300


@dataclass(frozen=True)
class NonceUseRecord:
    digest: str
    tx_hash: str


class RouterClient:
    def __init__(
        self,
        w3: Web3,
        router: str,
        *,
        caller: str,
        reverts: RevertDecoder,
        events: EventDecoder,
        sessions: sessionmaker[Session] | None = None,
    ) -> None:
        self.w3 = w3
        self.address = Web3.to_checksum_address(router)
        self.caller = caller  # simulations run as this account (a relayer key)
        self.reverts = reverts
        self.events = events
        self.sessions = sessions
        self._nonce_used_topic = events.topic("NonceUsed")
        self._simulate_v1: bool | None = None  # whether the node serves eth_simulateV1 (None: not asked)

    # ------------------------------------------------------------------ simulation

    def revert_of(self, error: Mapping[str, Any]) -> Revert:
        """A JSON-RPC error (from eth_call / eth_estimateGas) → the router's decoded revert."""
        data = error.get("data")
        if isinstance(data, dict):
            data = data.get("data")
        raw = bytes.fromhex(data[2:]) if isinstance(data, str) and data.startswith("0x") else b""
        return Revert(self.reverts.decode(raw))

    def decode_revert(self, data: bytes) -> Revert:
        return Revert(self.reverts.decode(data))

    def _tx(self, data: bytes) -> dict[str, str]:
        return {"from": self.caller, "to": self.address, "data": "0x" + data.hex()}

    def estimate_gas(self, data: bytes) -> int:
        """The gas the call needs; raises RouterRevertedError if it would revert."""
        response = rpc.request(self.w3, "eth_estimateGas", [self._tx(data)])
        if "error" in response:
            raise RouterRevertedError(self.revert_of(response["error"]))
        return int(response["result"], 16)

    def call(self, data: bytes, block: str = "latest") -> bytes:
        """eth_call's return data; raises RouterRevertedError if it would revert."""
        response = rpc.request(self.w3, "eth_call", [self._tx(data), block])
        if "error" in response:
            raise RouterRevertedError(self.revert_of(response["error"]))
        return bytes.fromhex(str(response["result"])[2:])

    def simulate_batch(self, data: bytes) -> list[bytes]:
        """Runs an executeIntents / executeExits calldata with eth_call: per item, empty if it would
        succeed, else its revert data (`decode_revert`). Raises RouterRevertedError if the batch as a
        whole would revert."""
        return calls.batch_results(self.call(data))

    def simulate(self, data: bytes, block: str = "latest") -> Simulation:
        """Runs the call once on `block` and measures its gas in the same run (`eth_simulateV1`),
        where an eth_call and then an eth_estimateGas (which runs it several times over) would take
        two requests and many runs. A node without eth_simulateV1 gets the eth_call, and
        `gas_needed` its estimate. Raises RouterRevertedError if the call would revert.

        `pending` runs it in the next block, at the next block's time, as an estimate does: a
        transaction that would revert whole (a single call) must not pass on `latest`'s older clock."""
        if self._simulate_v1 is not False:
            request = {"blockStateCalls": [{"calls": [self._tx(data)]}]}
            response = rpc.request(self.w3, "eth_simulateV1", [request, block])
            if "error" not in response:
                self._simulate_v1 = True
                call = response["result"][0]["calls"][0]
                output = bytes.fromhex(str(call.get("returnData") or "0x")[2:])
                if int(call["status"], 16) != 1:
                    raise RouterRevertedError(self.decode_revert(output))
                return Simulation(output, int(call["gasUsed"], 16))
            # A revert is a call's status, not an error: an error is the node's (no such method, a
            # hiccup), and this call goes the other way, so that only a revert refuses an intent.
            if self._simulate_v1 is None:
                self._simulate_v1 = False  # the node has no (usable) eth_simulateV1: eth_call from now on
                log.info("no eth_simulateV1 on the node (%s): eth_call + eth_estimateGas", response["error"])
            else:
                log.warning("eth_simulateV1 failed (%s): eth_call + eth_estimateGas", response["error"])
        return Simulation(self.call(data, block), None)

    def gas_needed(self, data: bytes, simulation: Simulation) -> int:
        """The gas `data` needs (before the caller's margin): from the simulation's measure, else the
        node's estimate (raises RouterRevertedError if it would revert by now)."""
        if simulation.gas_used is not None:
            return gas_from_used(simulation.gas_used)
        return self.estimate_gas(data)

    # ------------------------------------------------------------------ receipts

    def receipt(self, tx_hash: str) -> Mapping[str, Any] | None:
        """The raw receipt (hex fields), or None while the node knows no receipt for it."""
        tx_hash = tx_hash if tx_hash.startswith("0x") else "0x" + tx_hash
        result: Mapping[str, Any] | None = rpc.call(self.w3, "eth_getTransactionReceipt", [tx_hash])
        return result

    def router_logs(self, receipt: Mapping[str, Any]) -> list[DecodedLog]:
        """The receipt's router events, decoded, in log order."""
        out: list[DecodedLog] = []
        for raw in receipt["logs"]:
            if str(raw["address"]).lower() != self.address.lower():
                continue
            event = self.events.decode(raw)
            if event is not None:
                out.append(event)
        return out

    def transaction_known(self, tx_hash: str) -> bool:
        """Whether the node knows the transaction (mined or in its pool)."""
        return rpc.call(self.w3, "eth_getTransactionByHash", [tx_hash]) is not None

    def replay(self, tx_hash: str) -> Revert | None:
        """Why a mined transaction reverted: its call replayed on the state of its block (receipts
        carry no revert data). None when the replay does not revert or cannot be made."""
        try:
            tx = rpc.call(self.w3, "eth_getTransactionByHash", [tx_hash])
            if not tx or tx.get("blockNumber") is None:
                return None
            call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"]}
            response = rpc.request(self.w3, "eth_call", [call, tx["blockNumber"]])
        except (RelayerError, rpc.RpcError):
            return None
        if "error" not in response:
            return None
        return self.revert_of(response["error"])

    # ------------------------------------------------------------------ nonces

    def nonce_used(self, agent_id: int, nonce: int) -> NonceUseRecord | None:
        """Which signed intent (digest) used this nonce, in which transaction, if the chain has one:
        the indexed NonceUsed events first, then the blocks the index has not reached yet."""
        from_block = 0
        if self.sessions is not None:
            with self.sessions() as session:
                # The cursor first: under READ COMMITTED (PostgreSQL) each statement sees the latest
                # commit, and the indexer may commit a block between the two reads. Read in this
                # order, a use the index does not show yet is in a block after the cursor read.
                cursor = mirror.cursor(session)
                if cursor is not None:
                    from_block = cursor.block_number + 1
                row = session.scalar(
                    select(NonceUse).where(NonceUse.agent_id == agent_id, NonceUse.nonce == nonce)
                )
                if row is not None:
                    return NonceUseRecord(row.digest, row.tx_hash)
        if from_block > 0 and from_block > int(rpc.call(self.w3, "eth_blockNumber", []), 16):
            return None  # the index has every block there is
        logs: list[dict[str, Any]] = rpc.call(
            self.w3,
            "eth_getLogs",
            [
                {
                    "fromBlock": hex(from_block),
                    "toBlock": "latest",
                    "address": self.address,
                    "topics": [self._nonce_used_topic, "0x" + agent_id.to_bytes(32, "big").hex()],
                }
            ],
        )
        for raw in logs:
            event = self.events.decode(raw)
            if event is not None and event.args["nonce"] == nonce:
                return NonceUseRecord(event.args["digest"], event.tx_hash)
        return None

    def chain_id(self) -> int:
        return int(rpc.call(self.w3, "eth_chainId", []), 16)
