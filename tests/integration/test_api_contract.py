"""The OpenAPI document is the contract (SPEC §5.3): it validates, every operation types its parameters
and documents its success body and its error codes with the `{code, message, details}` schema (and
never FastAPI's 422), and a client generated from it by openapi-python-client quotes, signs and submits
an open with its generated types alone."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from openapi_spec_validator import validate

from relayer.api.schemas.common import codes_of
from relayer.api.schemas.intents import IntentDetailPublic, IntentPublic, IntentsPublic, VerifyPublic
from relayer.api.schemas.quotes import QuotePublic
from relayer.api.schemas.reads import (
    AgentPublic,
    HealthPublic,
    PositionDetailPublic,
    PositionsPublic,
    PricesPublic,
    ReadyPublic,
    VaultTokensPublic,
)
from relayer.numbers import MAX_DB_ID

from .conftest import Api
from .test_api_rejections import LADDER, open_position, signed

UNTYPED = {"/health", "/ready", "/metrics"}  # no parameters, no error codes of their own


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, item in doc["paths"].items() for method, op in item.items()]


def test_openapi_document_validates(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    validate(doc)  # openapi-spec-validator: raises on any violation of the OpenAPI 3.1 schema
    assert doc["openapi"].startswith("3.1")


def test_every_operation_is_typed_and_documents_its_error_codes(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    assert "HTTPValidationError" not in json.dumps(doc)
    assert "ErrorPublic" in doc["components"]["schemas"]
    ids = {op["operationId"] for _m, _p, op in operations(doc)}
    assert len(ids) == len(operations(doc))
    for method, path, op in operations(doc):
        where = (method, path)
        responses = op["responses"]
        assert "422" not in responses or codes_of(responses)[422], where
        ok = [s for s in responses if s.startswith("2")]
        assert ok, where
        if path not in UNTYPED and not path.endswith("/events"):
            for status in ok:
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema["$ref"].endswith("Public"), (where, status, schema)
        if path in UNTYPED:
            continue
        # Every error status names its codes and uses the error schema.
        declared = codes_of(responses)
        assert 400 in declared and "invalid_request" in declared[400], where
        for status, codes in declared.items():
            schema = responses[str(status)]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorPublic"}, (where, status)
            assert all(f"`{c}`" in responses[str(status)]["description"] for c in codes), where
        for param in op.get("parameters", []):
            if param["in"] == "path":
                schema = param["schema"]
                assert (schema["type"], schema["minimum"], schema["maximum"]) == ("integer", 1, MAX_DB_ID), (
                    where,
                    param,
                )
    by_id = {op["operationId"]: op for _m, _p, op in operations(doc)}
    quote_params = {name: {p["name"] for p in by_id[name]["parameters"]} for name in by_id if "quote" in name}
    assert {"symbol", "usdcAmount", "exits", "deadline", "maxSlippageBps"} <= quote_params["quote_open"]
    assert {"positionId", "symbol", "tokenAmount", "minUsdcOut"} <= quote_params["quote_reduce"]
    assert {"positionId", "exits"} <= quote_params["quote_ladder"]
    assert {"200", "201", "202"} <= set(by_id["submit_open"]["responses"])
    assert codes_of(by_id["submit_open"]["responses"])[409] == {"nonce_mismatch", "position_exists"}
    assert codes_of(by_id["get_intent"]["responses"])[404] == {"agent_not_found", "intent_not_found"}


def test_responses_match_their_public_models(api: Api) -> None:
    """Each read and quote, answered for real, validates against its (closed) response model."""
    agent_id, _key = api.agent(0)
    position_id = open_position(api)
    c = api.client
    intent_id = c.get(f"/agents/{agent_id}/intents").json()["intents"][0]["intentId"]
    q, body = signed(api, 0, "AddToPosition", positionId=position_id, usdcAmount="10")
    verified = c.post(f"/agents/{agent_id}/intents/verify", json={"primaryType": "AddToPosition", **body})
    answers = [
        (HealthPublic, c.get("/health")),
        (ReadyPublic, c.get("/ready")),
        (PricesPublic, c.get("/prices")),
        (VaultTokensPublic, c.get("/vaults/1/tokens")),
        (AgentPublic, c.get(f"/agents/{agent_id}")),
        (PositionsPublic, c.get(f"/agents/{agent_id}/positions", params={"status": "all"})),
        (PositionDetailPublic, c.get(f"/agents/{agent_id}/positions/{position_id}")),
        (IntentsPublic, c.get(f"/agents/{agent_id}/intents")),
        (IntentDetailPublic, c.get(f"/agents/{agent_id}/intents/{intent_id}")),
        (QuotePublic, c.get(f"/agents/{agent_id}/trade-intents/quote", params={"symbol": "AAPL"})),
        (QuotePublic, c.get(f"/agents/{agent_id}/reduce-intents", params={"positionId": position_id})),
        (VerifyPublic, verified),
    ]
    for model, r in answers:
        assert r.status_code == 200, (model, r.text)
        model.model_validate(r.json())
    r = c.post(f"/agents/{agent_id}/add-intents", json=body)
    assert r.status_code == 201, r.text
    IntentPublic.model_validate(r.json())
    assert q["nonce"] == body["nonce"]


def generate_client(api: Api, where: Path) -> Any:
    """openapi-python-client, offline, on the live document; returns the imported package."""
    spec = where / "openapi.json"
    spec.write_text(api.client.get("/openapi.json").text)
    config = where / "config.yaml"
    config.write_text("post_hooks: []\nproject_name_override: agclient\npackage_name_override: agclient\n")
    tool = Path(sys.executable).with_name("openapi-python-client")
    done = subprocess.run(
        [
            *(str(tool), "generate", "--path", str(spec), "--output-path", str(where / "agclient")),
            *("--meta", "none", "--config", str(config)),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(where))
    try:
        for name in [m for m in sys.modules if m == "agclient" or m.startswith("agclient.")]:
            del sys.modules[name]
        return importlib.import_module("agclient")
    finally:
        sys.path.remove(str(where))


def test_a_generated_client_quotes_and_submits_an_open(api: Api, tmp_path: Path) -> None:
    agclient = generate_client(api, tmp_path)
    Client = agclient.Client  # noqa: N806 - the generated class
    with Client(base_url=api.url, raise_on_unexpected_status=True, timeout=None) as client:
        generated_client_trades(client, api)


def generated_client_trades(client: Any, api: Api) -> None:
    from agclient.api.intents import get_intent, quote_open, submit_open  # type: ignore[import-not-found]
    from agclient.models import (  # type: ignore[import-not-found]
        ErrorPublic,
        IntentDetailPublic,
        IntentPublic,
        OpenIntentRequest,
        OpenIntentRequestExitsItem,
        OpenIntentRequestExitsItemTriggerType,
        QuotePublic,
    )

    agent_id, key = api.agent(0)

    q = quote_open.sync(
        agent_id,
        client=client,
        symbol="NVDA",
        usdc_amount="250",
        exits=json.dumps(LADDER),
        min_token_out="1",
    )
    assert isinstance(q, QuotePublic), q
    typed = q.typed_data.to_dict()
    signature = Account.sign_message(encode_typed_data(full_message=typed), key).signature
    message = q.typed_data.message
    body = OpenIntentRequest(
        symbol=q.symbol,
        usdc_amount="250",
        min_token_out="1",
        max_slippage_bps=int(message["maxSlippageBps"]),
        exits=[
            OpenIntentRequestExitsItem(
                trigger_type=OpenIntentRequestExitsItemTriggerType(rule.trigger_type.value),
                trigger_bps=rule.trigger_bps,
                exit_bps=rule.exit_bps,
            )
            for rule in q.exits
        ],
        deadline=int(message["deadline"]),
        nonce=q.nonce,
        signature="0x" + bytes(signature).hex(),
    )
    answer = submit_open.sync_detailed(agent_id, client=client, body=body, prefer="wait=20")
    assert answer.status_code == 201, answer.content
    record = answer.parsed
    assert isinstance(record, IntentPublic) and record.status == "confirmed", record
    assert record.fill is not None and record.position_id is not None

    # The same signed body again: the first record, 200 — parsed by the same generated type.
    again = submit_open.sync_detailed(agent_id, client=client, body=body)
    assert again.status_code == 200 and isinstance(again.parsed, IntentPublic)
    assert again.parsed.intent_id == record.intent_id
    detail = get_intent.sync(agent_id, int(record.intent_id), client=client)
    assert isinstance(detail, IntentDetailPublic) and [h.status for h in detail.history][-1] == "confirmed"

    # Errors parse as the documented error schema.
    missing = quote_open.sync_detailed(99, client=client, symbol="NVDA")
    assert missing.status_code == 404 and isinstance(missing.parsed, ErrorPublic)
    assert missing.parsed.code == "agent_not_found"
    body.nonce = 7  # no longer what was signed
    refused = submit_open.sync_detailed(agent_id, client=client, body=body)
    assert refused.status_code == 401 and isinstance(refused.parsed, ErrorPublic)
    assert refused.parsed.code == "invalid_signature"
