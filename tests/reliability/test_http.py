"""HTTP abuse: property-based requests over the whole OpenAPI document (schemathesis) must never get a
server error (a 5xx other than the spec's 503s is a bug, SPEC §2.1), and a client that trickles its
body or never finishes it must not hold up anyone else."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from relayer.api.schemas.common import codes_of
from tests.integration.test_api_rejections import LADDER, open_position, signed

from .harness import Api

SPEC_503 = {"chain_unavailable", "oracle_stale"}
MAX_EXAMPLES = 25  # per operation: a bounded run, a few seconds per database
ERROR_KEYS = {"code", "message", "details"}


CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance]


def check_answer(case: Case, status: int, body: Any) -> None:
    where = (case.method, case.formatted_path, status, body)
    if status >= 500:
        assert status == 503 and isinstance(body, dict) and body.get("code") in SPEC_503, where
    if 400 <= status < 500:
        assert isinstance(body, dict) and set(body) == ERROR_KEYS, where
    if status >= 400 and isinstance(body, dict) and "code" in body:
        # The code is one the document lists for this operation and status (SPEC §5.3).
        declared = codes_of(case.operation.definition.raw["responses"])
        assert body["code"] in declared.get(status, set()), (where, declared)


# Ids that exist, so inputs reach past the lookups; and, besides the quote parameters the document
# declares, values for them that are typical mistakes (negative, exponent, too many rules ...).
KNOWN_IDS = {"agent_id": ["1", "2"], "vault_id": ["1"], "position_id": ["1"], "intent_id": ["1"]}
QUOTE_PARAMS = [
    "symbol",
    "usdcAmount",
    "tokenAmount",
    "positionId",
    "exits",
    "maxSlippageBps",
    "minTokenOut",
    "minUsdcOut",
    "deadline",
]
QUOTE_VALUES = st.one_of(
    st.text(max_size=24),
    st.sampled_from(
        [
            *("NVDA", "AAPL", "nvda", "1", "0", "100", "-1", "1e3", "0.0000001", "1.5", str(2**256), "999"),
            *("[]", "{}", "[1]", json.dumps(LADDER), json.dumps([LADDER[1]] * 9), "null"),
        ]
    ),
)


def known(operation: Any) -> st.SearchStrategy[Case]:
    """The operation's cases, with path ids often swapped for ones that exist and, for quotes, a
    query string of the parameters they read."""
    is_quote = (
        operation.method.upper() == "GET"
        and "intents" in operation.path
        and "{intent_id}" not in operation.path
    )

    def edit(drawn: tuple[Case, dict[str, str | None], dict[str, str]]) -> Case:
        case, ids, query = drawn
        for name, value in ids.items():
            if value is not None and case.path_parameters and name in case.path_parameters:
                case.path_parameters[name] = value
        if is_quote:
            case.query = {**(case.query or {}), **query}
        return case

    ids = st.fixed_dictionaries({k: st.one_of(st.none(), st.sampled_from(v)) for k, v in KNOWN_IDS.items()})
    query = st.dictionaries(st.sampled_from(QUOTE_PARAMS), QUOTE_VALUES, max_size=6)
    return st.tuples(operation.as_strategy(), ids, query).map(edit)


def test_no_input_gets_a_server_error(api: Api) -> None:
    """Every operation in /openapi.json, fed schema-shaped and schema-breaking inputs: no server error,
    and every answer conforms to the document (its status is documented, its body matches the
    documented schema, an error's code is one the operation lists). The event stream is left out: it
    never ends by design (test_api_reads covers it)."""
    open_position(api)  # agent 1 has position 1 and intent 1
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if not op.path.endswith("/events")]
    assert len(operations) >= 15, [op.path for op in operations]
    calls = 0
    for operation in operations:

        @given(case=known(operation))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Case) -> None:
            nonlocal calls
            # wait=0: a submit that got through must not hold the run for the default 10 s.
            response = case.call(headers={"Prefer": "wait=0"}, timeout=30)
            calls += 1
            try:
                body = response.json()
            except ValueError:
                body = response.text
            check_answer(case, response.status_code, body)
            case.validate_response(response, checks=CONFORMANCE)

        fuzz()
    assert calls >= len(operations) * 5


# ---------------------------------------------------------------------- slow clients


def trickle(url: str, path: str, total: int, stop_after: int | None = None) -> socket.socket:
    """Opens a POST that declares `total` bytes and sends only `stop_after` of them (or the first byte)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {total}\r\n\r\n"
    )
    sock.sendall(head.encode() + b"{" * (stop_after or 1))
    return sock


def test_slow_clients_do_not_block_others(api: Api) -> None:
    """Fifty connections each send a submit's headers and one byte of body, then nothing — more than
    the worker threads the sync handlers run on (anyio's default is 40), so a server that read bodies
    on those threads would starve. Meanwhile another agent reads, quotes and trades as usual."""
    agent_id, _ = api.agent(0)
    stalled = [trickle(api.url, f"/agents/{agent_id}/trade-intents", total=500) for _ in range(50)]
    try:
        started = time.monotonic()
        assert api.client.get("/health").status_code == 200
        _q, body = signed(api, 1, "OpenPosition", symbol="AAPL", usdcAmount="100", exits=[LADDER[1]])
        with ThreadPoolExecutor(max_workers=4) as pool:
            reads = list(pool.map(lambda _: api.client.get("/prices?symbols=NVDA").status_code, range(8)))
        r = api.client.post(f"/agents/{api.agent(1)[0]}/trade-intents", json=body)
        assert reads == [200] * 8
        assert r.status_code == 201, r.text
        assert time.monotonic() - started < 10
    finally:
        for sock in stalled:
            sock.close()
    # The stalled submits never became intents.
    assert api.client.get(f"/agents/{agent_id}/intents").json()["intents"] == []
