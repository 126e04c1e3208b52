"""`RouterClient.nonce_used` against an indexer committing between its reads (relayer/chain/router.py).

Which signed intent used an agent's nonce is read from the index (`nonce_uses`), and from the chain
for the blocks after the index's cursor. The indexer commits a block's rows and its cursor together;
a reader that looked for the row first and the cursor second could miss a use committed in between
(each statement sees the latest commit: PostgreSQL's READ COMMITTED, and SQLite's reads outside a
write transaction): the row was not there yet,
and the cursor already past its block. The finalizer then failed a front-run intent as if its
nonce were unused, without the agent's strike."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3

from relayer.chain import artifacts, rpc
from relayer.chain.admin import revert_decoder
from relayer.chain.anvil import Anvil
from relayer.chain.events import EventDecoder
from relayer.chain.router import NonceUseRecord, RouterClient
from relayer.store import mirror
from relayer.store.models import NonceUse

DIGEST = "0x" + "ab" * 32
TX = "0x" + "cd" * 32


def test_a_use_the_indexer_commits_between_the_reads_is_found(
    sessions: sessionmaker[Session], anvil: Anvil
) -> None:
    w3 = Web3(Web3.HTTPProvider(anvil.url))
    head = int(rpc.call(w3, "eth_blockNumber", []), 16)
    # The index is at the head; the use is in the next block, which the indexer is about to commit.
    with sessions.begin() as session:
        mirror.set_cursor(session, head, "0x" + "00" * 32)
    client = RouterClient(
        w3,
        "0x" + "11" * 20,
        caller="0x" + "22" * 20,
        reverts=revert_decoder(),
        events=EventDecoder([artifacts.abi("TradeRouter")]),
        sessions=sessions,
    )
    engine = sessions.kw["bind"]
    reads = 0

    def indexer_commits_after_the_first_read(*_args: Any) -> None:
        nonlocal reads
        reads += 1
        if reads != 1:
            return
        with sessions.begin() as indexer:  # another connection, as the indexer's thread
            indexer.add(NonceUse(agent_id=7, nonce=3, digest=DIGEST, tx_hash=TX, block_number=head + 1))
            mirror.set_cursor(indexer, head + 1, "0x" + "01" * 32)

    event.listen(engine, "after_cursor_execute", indexer_commits_after_the_first_read)
    try:
        found = client.nonce_used(7, 3)
    finally:
        event.remove(engine, "after_cursor_execute", indexer_commits_after_the_first_read)
    assert reads >= 2
    assert found == NonceUseRecord(DIGEST, TX)
