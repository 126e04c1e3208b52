"""Third-party clients against the real relayer over HTTP (SPEC §2.3): the quote's `typedData` signs
unchanged with ethers v6, viem (examples/js/agent.mjs, run with Node.js) and `cast wallet sign --data`,
and the JavaScript agent gets the exact SPEC §2.1 code for each usual mistake."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .agentkit import PATHS, body_from_quote, quote
from .conftest import Api
from .test_api_rejections import settle

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors" / "eip712.json"
AGENT_JS = ROOT / "examples" / "js" / "agent.mjs"
LOCAL_CAST = ROOT / "node_modules" / "@foundry-rs" / "cast-linux-amd64" / "bin" / "cast"
LADDER = [
    {"triggerType": "TakeProfit", "triggerBps": 1000, "exitBps": 5000},
    {"triggerType": "StopLoss", "triggerBps": -1000, "exitBps": 10000},
]


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is required for the cross-client tests (scripts/test needs it for npm too)")
    for package in ("ethers", "viem"):
        if not (ROOT / "node_modules" / package / "package.json").is_file():
            pytest.fail(
                f"npm package {package} is missing: `npm install --ignore-scripts` (scripts/test does)"
            )
    return node


def _cast() -> str:
    if LOCAL_CAST.is_file():
        return str(LOCAL_CAST)
    found = shutil.which("cast")
    if found is None:
        pytest.fail("cast is missing: run `npm install --ignore-scripts` (scripts/test does)")
    return found


def run_agent(api: Api, library: str, *extra: str) -> tuple[int, list[dict[str, Any]], str]:
    agent_id, key = api.agent(0)
    result = subprocess.run(
        [
            _node(),
            str(AGENT_JS),
            "--api",
            api.url,
            "--agent-id",
            str(agent_id),
            "--key",
            key,
            "--library",
            library,
            "--manifest",
            "/nonexistent",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.returncode, lines, result.stdout + result.stderr


@pytest.mark.parametrize("library", ["ethers", "viem"])
def test_js_agent_opens_adds_updates_the_ladder_and_reduces(api: Api, library: str) -> None:
    code, lines, output = run_agent(api, library)
    assert code == 0, output
    assert [line["step"] for line in lines] == ["open", "add", "ladder", "reduce"], output
    assert [line["primaryType"] for line in lines] == [
        "OpenPosition",
        "AddToPosition",
        "UpdateExitLadder",
        "ReducePosition",
    ]
    assert all(line["library"] == library for line in lines)
    assert [line["status"] for line in lines] == [201] * 4, output
    assert [line["nonce"] for line in lines] == [0, 1, 2, 3]
    assert all(line["response"]["status"] == "confirmed" for line in lines), output
    # A 201 is answered once the relayer's own view includes the block: the next quote is never stale.
    assert not any(line.get("quoteRetries") for line in lines), output
    opened = lines[0]["response"]
    assert opened["fill"]["usdc"] == "100"
    position_id = opened["positionId"]
    assert all(line["response"]["positionId"] == position_id for line in lines)

    agent_id, _ = api.agent(0)
    c = api.client
    settle(api)
    p = c.get(f"/agents/{agent_id}/positions/{position_id}").json()
    assert p["status"] == "open"
    assert [h["kind"] for h in p["history"]] == ["opened", "ladder", "increased", "ladder", "reduced"]
    ladder = [(r["triggerType"], r["triggerBps"]) for r in p["ladder"]]
    assert ladder == [("TakeProfit", 2000), ("StopLoss", -1000)]
    assert c.get(f"/agents/{agent_id}").json()["nextNonce"] == 4
    intents = c.get(f"/agents/{agent_id}/intents").json()["intents"]
    assert len(intents) == 4 and all(i["status"] == "confirmed" for i in intents)


@pytest.mark.parametrize("library", ["ethers", "viem"])
def test_js_agent_gets_the_spec_code_for_each_mistake(api: Api, library: str) -> None:
    code, lines, output = run_agent(api, library, "--mistakes")
    assert code == 0, output
    by_step = {line["step"]: line for line in lines}
    assert list(by_step) == [
        "open",
        "mistake:wrong-key",
        "mistake:stale-nonce",
        "mistake:no-take-profit-update",
        "mistake:no-take-profit-open",
    ], output
    assert by_step["open"]["status"] == 201

    agent_id, _ = api.agent(0)
    signer = api.client.get(f"/agents/{agent_id}").json()["signer"]
    wrong_key = by_step["mistake:wrong-key"]
    assert (wrong_key["status"], wrong_key["code"]) == (401, "invalid_signature")
    assert wrong_key["response"]["details"]["recovered"] not in (None, signer)

    stale = by_step["mistake:stale-nonce"]
    assert (stale["status"], stale["code"]) == (409, "nonce_mismatch")
    assert stale["nonce"] == 0 and stale["response"]["details"]["expected"] == 1

    for step in ("mistake:no-take-profit-update", "mistake:no-take-profit-open"):
        line = by_step[step]
        assert (line["status"], line["code"]) == (422, "exit_ladder_invalid"), output
        assert line["failedChecks"] == ["exit_ladder"], line  # the quote said so before signing
        assert set(line["response"]["details"]) >= {"ruleIndex", "reason"}

    # Nothing but the open went through.
    assert api.client.get(f"/agents/{agent_id}").json()["nextNonce"] == 1


def test_cast_signs_the_quoted_typed_data_unchanged(api: Api) -> None:
    agent_id, key = api.agent(0)
    c = api.client

    def cast_trade(primary_type: str, **params: Any) -> dict[str, Any]:
        q = quote(c, agent_id, primary_type, **params)
        assert q.status_code == 200, q.text
        typed = json.dumps(q.json()["typedData"])
        signed = subprocess.run(
            [_cast(), "wallet", "sign", "--data", "--private-key", key, typed],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert signed.returncode == 0, signed.stderr
        body = body_from_quote(q.json(), signed.stdout.strip())
        r = c.post(f"/agents/{agent_id}/{PATHS[primary_type][1]}", json=body)
        assert r.status_code == 201, r.text
        settle(api)  # this test is about signing; the quote-after-201 lag is the agent tests' business
        answer: dict[str, Any] = r.json()
        return answer

    opened = cast_trade("OpenPosition", symbol="AAPL", usdcAmount="200", exits=LADDER)
    position_id = opened["positionId"]
    cast_trade("AddToPosition", positionId=position_id, usdcAmount="100")
    new_ladder = [
        {"triggerType": "TakeProfit", "triggerBps": 2000, "exitBps": 10000},
        {"triggerType": "StopLoss", "triggerBps": -500, "exitBps": 10000},
    ]
    cast_trade("UpdateExitLadder", positionId=position_id, exits=new_ladder)
    cast_trade("ReducePosition", positionId=position_id)
    p = c.get(f"/agents/{agent_id}/positions/{position_id}").json()
    assert p["status"] == "closed"


# Hashes every golden vector (written by eth-account and cast, tests/vectors/eip712.json) with ethers and
# viem, and signs it with the vector's key: RFC 6979 makes the signatures byte-identical.
VECTOR_SCRIPT = r"""
import { readFileSync } from "node:fs";
import { TypedDataEncoder, Wallet } from "ethers";
import { hashTypedData, keccak256, concat, encodeAbiParameters, toHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";

const golden = JSON.parse(readFileSync(process.argv[1], "utf8"));
const EXIT_RULE = [
  { name: "triggerType", type: "uint8" },
  { name: "triggerBps", type: "int32" },
  { name: "exitBps", type: "uint16" },
];
const RULE_ABI = [{ type: "bytes32" }, { type: "uint8" }, { type: "int32" }, { type: "uint16" }];
const typeHash = keccak256(toHex("ExitRule(uint8 triggerType,int32 triggerBps,uint16 exitBps)"));
const ruleHash = (r) =>
  keccak256(encodeAbiParameters(RULE_ABI, [typeHash, r.triggerType, r.triggerBps, r.exitBps]));

const out = { vectors: [], exitsHashes: [] };
for (const v of golden.vectors) {
  const td = v.typedData;
  const { EIP712Domain: _, ...types } = td.types;
  out.vectors.push({
    name: v.name,
    ethers: {
      digest: TypedDataEncoder.hash(td.domain, types, td.message),
      signature: await new Wallet(v.signerKey).signTypedData(td.domain, types, td.message),
    },
    viem: {
      digest: hashTypedData({ ...td, types }),
      signature: await privateKeyToAccount(v.signerKey).signTypedData({ ...td, types }),
    },
  });
}
// exitsHash is how EIP-712 encodes an ExitRule[] member (SPEC 1.3): ethers encodes the array itself.
for (const x of golden.exitsHashes) {
  out.exitsHashes.push({
    name: x.name,
    ethers: TypedDataEncoder.from({ ExitRule: EXIT_RULE }).encodeData("ExitRule[]", x.rules),
    viem: keccak256(concat(x.rules.map(ruleHash))),
  });
}
console.log(JSON.stringify(out));
"""


def test_ethers_and_viem_reproduce_the_golden_vectors() -> None:
    result = subprocess.run(
        [_node(), "--input-type=module", "-e", VECTOR_SCRIPT, str(VECTORS)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout)
    golden = json.loads(VECTORS.read_text())
    assert [v["name"] for v in got["vectors"]] == [v["name"] for v in golden["vectors"]]
    for ours, want in zip(got["vectors"], golden["vectors"], strict=True):
        for library in ("ethers", "viem"):
            assert ours[library] == {"digest": want["digest"], "signature": want["signature"]}, (
                library,
                want["name"],
            )
    for ours, want in zip(got["exitsHashes"], golden["exitsHashes"], strict=True):
        assert ours["ethers"] == ours["viem"] == want["exitsHash"], want["name"]
