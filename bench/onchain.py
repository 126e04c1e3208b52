"""What an outside observer reads from the chain while a benchmark runs: when each router event first
became visible (a thread polling new blocks), and which transactions a range of blocks holds, with
their gas. Nothing here asks the relayer anything."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from eth_utils.crypto import keccak
from web3 import Web3

from bench.keeper import rpc

POSITION_OPENED = "0x" + keccak(text="PositionOpened(uint256,uint256,address,uint256,uint256,uint256)").hex()
POSITION_CLOSED = "0x" + keccak(text="PositionClosed(uint256,uint256,address)").hex()


def topic_int(topic: str) -> int:
    return int(topic, 16)


@dataclass
class Seen:
    """One log as first seen: the indexed integer the watcher keys on, its block, and the wall time
    (time.time()) the poll that returned it finished."""

    key: int
    block: int
    at: float


@dataclass
class LogWatcher:
    """Polls `eth_getLogs` for one event of `address` over the blocks mined since the last poll, every
    `interval_s`; keeps the first sighting per `topics[key_topic]` value. Run with start()/stop(), or
    poll() by hand."""

    w3: Web3
    address: str
    topic0: str
    key_topic: int
    from_block: int
    interval_s: float = 0.01
    seen: dict[int, Seen] = field(default_factory=dict)
    blocks_seen: dict[int, float] = field(default_factory=dict)  # block → wall time first seen
    error: BaseException | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def poll(self) -> None:
        head = int(rpc(self.w3, "eth_blockNumber"), 16)
        if head < self.from_block:
            return
        logs = rpc(
            self.w3,
            "eth_getLogs",
            [
                {
                    "address": self.address,
                    "topics": [self.topic0],
                    "fromBlock": hex(self.from_block),
                    "toBlock": hex(head),
                }
            ],
        )
        now = time.time()
        for b in range(self.from_block, head + 1):
            self.blocks_seen.setdefault(b, now)
        for log in logs:
            key = topic_int(log["topics"][self.key_topic])
            if key not in self.seen:
                self.seen[key] = Seen(key, int(log["blockNumber"], 16), now)
        self.from_block = head + 1

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                self.poll()
                self._stop.wait(self.interval_s)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def start(self) -> LogWatcher:
        self._thread = threading.Thread(target=self._loop, name="bench-log-watcher", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.error is not None:
            raise RuntimeError(f"the chain watcher failed: {self.error!r}") from self.error
        self.poll()  # whatever arrived since the last poll

    def wait_for(self, keys: Iterable[int], timeout_s: float, idle_s: float | None = None) -> bool:
        """Until every key was seen (True), `timeout_s` passed, or — with `idle_s` — nothing new was
        seen for that long (False)."""
        wanted = set(keys)
        deadline = time.monotonic() + timeout_s
        last_count, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            if self.error is not None:
                raise RuntimeError(f"the chain watcher failed: {self.error!r}") from self.error
            count = len(wanted & self.seen.keys())
            if count == len(wanted):
                return True
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            elif idle_s is not None and time.monotonic() - last_change > idle_s:
                return False
            time.sleep(0.02)
        return False


@dataclass(frozen=True)
class BlockTxs:
    """Transactions to `to` in a block range: how many, how many reverted, their gas."""

    count: int
    reverted: int
    gas_used: int
    blocks: int


def txs_to(w3: Web3, to: str, first: int, last: int) -> BlockTxs:
    count = reverted = gas = 0
    target = to.lower()
    for b in range(first, last + 1):
        receipts: list[dict[str, Any]] = rpc(w3, "eth_getBlockReceipts", [hex(b)]) or []
        for r in receipts:
            if (r.get("to") or "").lower() != target:
                continue
            count += 1
            gas += int(r["gasUsed"], 16)
            if int(r["status"], 16) != 1:
                reverted += 1
    return BlockTxs(count, reverted, gas, max(0, last - first + 1))


def mined_at(w3: Web3, tx_hash: str, timeout_s: float = 60) -> tuple[float, dict[str, Any]]:
    """Polls the receipt every 2 ms: (wall time it first answered, the receipt)."""
    deadline = time.monotonic() + timeout_s
    while True:
        receipt: dict[str, Any] | None = rpc(w3, "eth_getTransactionReceipt", [tx_hash])
        if receipt is not None:
            return time.time(), receipt
        if time.monotonic() > deadline:
            raise RuntimeError(f"no receipt for {tx_hash}")
        time.sleep(0.002)
