#!/usr/bin/env python3
"""A complete AlphaGrid trading agent in one page: quote, sign, submit, look at the position.

    python examples/agent.py                       # uses the demo agent from the local stack
    python examples/agent.py --symbol AAPL --usdc 250 --stop-loss-bps -500 --take-profit-bps 1500

It reads the agent id and signing key from `.alphagrid/deployment.json` (written by `scripts/up`),
or from --agent-id / --key. Only eth-account and httpx are needed: the relayer's quote returns typed
data that signs unchanged (`eth_signTypedData_v4` form).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import httpx
from eth_account import Account
from eth_account.messages import encode_typed_data


def human(base: str, decimals: int) -> str:
    whole, frac = divmod(int(base), 10**decimals)
    return f"{whole}.{frac:0{decimals}d}".rstrip("0").rstrip(".") if frac else str(whole)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--manifest", default=".alphagrid/deployment.json")
    parser.add_argument("--api", help="relayer URL (default: the manifest's apiUrl)")
    parser.add_argument("--agent-id", type=int)
    parser.add_argument("--key", help="the agent's signing key (default: the manifest's demo key)")
    parser.add_argument("--symbol", default="NVDA")
    parser.add_argument("--usdc", default="100", help="USDC to spend, a decimal string")
    parser.add_argument("--stop-loss-bps", type=int, default=-500)
    parser.add_argument("--take-profit-bps", type=int, default=1000)
    args = parser.parse_args()

    manifest = json.loads(Path(args.manifest).read_text()) if Path(args.manifest).exists() else {}
    demo = (manifest.get("demo") or {}).get("agents") or [{}]
    agent_id = args.agent_id or demo[0].get("agentId")
    key = args.key or demo[0].get("signerKey")
    api = args.api or manifest.get("apiUrl") or "http://127.0.0.1:8000"
    if agent_id is None or key is None:
        print("give --agent-id and --key, or run scripts/up first", file=sys.stderr)
        return 2

    # A take-profit on half at +10%, and a stop-loss on the rest: the last rule must exit 100%.
    exits = [
        {"triggerType": "TakeProfit", "triggerBps": args.take_profit_bps, "exitBps": 5000},
        {"triggerType": "StopLoss", "triggerBps": args.stop_loss_bps, "exitBps": 10000},
    ]
    with httpx.Client(base_url=api, timeout=30) as client:
        # 1. Quote: the nonce, limits, price and the exact typed data to sign.
        q = client.get(
            f"/agents/{agent_id}/trade-intents/quote",
            params={"symbol": args.symbol, "usdcAmount": args.usdc, "exits": json.dumps(exits)},
        )
        if q.status_code != 200:
            print(f"quote failed: {q.json()}", file=sys.stderr)
            return 1
        quote = q.json()
        failed = [c for c in quote["checks"] if not c["ok"]]
        if failed:
            print(f"the relayer would reject this: {failed}", file=sys.stderr)
            return 1
        print(
            f"{args.symbol} at {quote['price']['price']} USD; headroom {quote['allocation']['headroom']} USDC"
        )

        # 2. Sign the typed data exactly as quoted.
        signed = Account.sign_message(encode_typed_data(full_message=quote["typedData"]), key)
        m = quote["typedData"]["message"]

        # 3. Submit the signed struct in human units, with the symbol instead of addresses.
        body = {
            "symbol": args.symbol,
            "usdcAmount": human(m["usdcAmount"], 6),
            "minTokenOut": human(m["minTokenOut"], 18),
            "maxSlippageBps": int(m["maxSlippageBps"]),
            "exits": quote["exits"],
            "deadline": int(m["deadline"]),
            "nonce": int(m["nonce"]),
            "signature": "0x" + bytes(signed.signature).hex(),
        }
        r = client.post(f"/agents/{agent_id}/trade-intents", json=body)
        if r.status_code not in (200, 201, 202):
            print(f"submit failed ({r.status_code}): {r.json()}", file=sys.stderr)
            return 1
        intent = r.json()
        print(f"intent {intent['intentId']} {intent['status']}: tx {intent['transactionHash']}")
        if intent.get("fill"):
            f = intent["fill"]
            print(f"filled {f['tokens']} {args.symbol} for {f['usdc']} USDC at {f['price']}")

        # 4. The position, with its ladder and each rule's trigger price.
        if intent.get("positionId"):
            p = client.get(f"/agents/{agent_id}/positions/{intent['positionId']}").json()
            print(
                f"position {p['id']}: {p['size']} {p['symbol']}, cost {p['costBasis']} USDC, "
                f"entry {p['entryPrice']}"
            )
            for rule in p["ladder"]:
                share = f"{rule['exitBps'] / 100:g}%"
                trigger = f"{rule['triggerType']:10} {rule['triggerBps']:+6} bps"
                print(f"  {trigger} -> sell {share} at {rule['triggerPrice']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
