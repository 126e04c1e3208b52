"""The soak's figures: printed, and written to bench/results/soak-<date>.md."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from collections import Counter
from datetime import UTC, datetime

from bench.soak.run import SoakResult, summary_numbers
from relayer.chain.anvil import anvil_binary


def machine() -> str:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    try:
        anvil = subprocess.run([anvil_binary(), "--version"], capture_output=True, text=True).stdout.split(
            "\n"
        )[0]
    except OSError:
        anvil = "unknown"
    return f"{os.cpu_count()} CPUs ({cpu}); Python {platform.python_version()}; {anvil}"


def render(result: SoakResult, command: str) -> str:
    c = result.config
    n = summary_numbers(result)
    f = result.findings
    subs = result.submissions
    accepted = [s for s in subs if s.accepted]
    refused = Counter(f"{s.status_code} {s.code}" for s in subs if not s.accepted)
    by_type = Counter(s.primary_type for s in subs)
    answers = Counter(f"{s.status_code}" for s in accepted)
    problems = f.problems()
    verdict = "**PASS** — no lost, doubled or pending intent; database = chain" if f.ok else "**FAIL**"
    now = datetime.now(UTC)
    caught = ", ".join(f"{i}/{t}" for i, t in result.caught_in_flight) or "–"
    mining = f"block time {c.block_time_s} s" if c.block_time_s else "automine"
    lines = [
        f"# Soak — {now:%Y-%m-%d %H:%M} UTC ({c.db})",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine()}. Anvil {mining}; "
        f"the relayer is `alphagrid serve` (API + indexer + sender + dispatcher + keeper) as a subprocess on "
        f"{c.db}, SIGKILLed at random moments and restarted on the same database.",
        "",
        f"Verdict: {verdict}",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| agents | {c.agents} |",
        f"| intents sent (signed, distinct) | {n['sent']} |",
        f"| … by type | {', '.join(f'{k} {v}' for k, v in sorted(by_type.items()))} |",
        f"| HTTP post attempts (incl. refused connections while down) | {n['posts']} |",
        f"| intents re-posted after a connection error | {n['retried_after_transport_error']} |",
        f"| answered 2xx | {len(accepted)} ({', '.join(f'{k}: {v}' for k, v in sorted(answers.items()))}) |",
        f"| … confirmed on chain exactly once | {f.confirmed} |",
        f"| … failed/rejected later with a reason (not on chain) | {f.failed_with_reason} |",
        f"| refused (final answer not 2xx) | {sum(refused.values())} |",
        f"| server errors (5xx other than 503) | {len(f.server_errors)} |",
        f"| quotes refused (no intent signed) | {sum(result.quote_errors.values())} |",
        f"| kills (SIGKILL) | {result.kills} (of which during start-up: {result.start_kills})"
        + (
            f"; one process of `--api-processes {result.config.api_processes}`: "
            + ", ".join(f"{role} × {n}" for role, n in sorted(result.child_kills.items()))
            if result.config.api_processes
            else ""
        )
        + " |",
        f"| in flight just before each kill (intents / tx requests) | {caught} |",
        f"| restarts | {result.restarts} (start to ready: median {n['start_median_s']:.1f} s, "
        f"max {n['start_max_s']:.1f} s) |",
        f"| **lost** (2xx, not executed, not failed with a reason) | **{len(f.lost)}** |",
        f"| **doubled** (executed twice) | **{len(f.doubled)}** |",
        f"| **pending left** (intents / tx requests) | **{len(f.pending_intents)} / "
        f"{len(f.pending_tx_requests)}** |",
        f"| executed without a 2xx to its client | {len(f.unacknowledged)} |",
        f"| wrong final status | {len(f.wrong_status)} |",
        f"| duplicate re-posts answered with another record | {len(f.duplicate_mismatch)} |",
        f"| mirror ≠ rebuilt-from-events mirror (rows) | {len(f.mirror_diffs)} |",
        f"| mirror ≠ router views | {len(f.chain_diffs)} |",
        f"| API ≠ rebuilt relayer's API | {len(f.api_diffs)} |",
        f"| on chain | {', '.join(f'{k} {v}' for k, v in result.chain_counts.items())} |",
        f"| oracle updates (price walk) | {result.price_updates} |",
        f"| client phase wall time | {result.client_wall_s:.1f} s |",
        f"| throughput | {n['sent'] / result.client_wall_s:.1f} intents/s sent, "
        f"{f.confirmed / result.client_wall_s:.1f} confirmed/s |",
        f"| settle after the clients stopped | {result.quiesce_s:.1f} s |",
        f"| total wall time (setup, soak, audit, rebuild) | {result.total_wall_s:.1f} s |",
        "",
        "Refusals by code: " + (", ".join(f"{k} × {v}" for k, v in refused.most_common()) or "none") + ".",
        "",
        "Quote refusals: "
        + (", ".join(f"{k} × {v}" for k, v in result.quote_errors.most_common()) or "none")
        + ".",
        "",
        "Why intents were rejected or failed after being accepted (records): "
        + (", ".join(f"{k} × {v}" for k, v in result.reasons.most_common()) or "none")
        + ".",
        "",
        "Transaction requests by purpose and outcome: "
        + ", ".join(f"{k} {v}" for k, v in sorted(result.tx_statuses.items()))
        + ".",
        "",
        "Intent records by final status: "
        + ", ".join(f"{k} {v}" for k, v in sorted(result.db_statuses.items()))
        + ".",
    ]
    if result.client_errors:
        lines += ["", "Client errors:", *[f"- {e}" for e in result.client_errors]]
    if result.reverted:
        lines += [
            "",
            f"Relayer transactions that reverted on chain ({len(result.reverted)}), replayed on their "
            "block's parent state: " + "; ".join(result.reverted[:20]) + ".",
        ]
    k = result.keeper
    lines += [
        "",
        f"Keeper (not part of the verdict): {k.sent} exit transactions, {k.reverted} reverted on chain; "
        f"{len(k.overlapping)} sent again while the same call was pending; audit trail: {len(k.unaudited)} "
        f"exit transactions it never mentions, {len(k.unended)} exits it shows `sent` with no outcome.",
    ]
    for name, items in (
        ("keeper: same exit sent while one was pending", k.overlapping),
        ("keeper audit: exit transactions never mentioned", k.unaudited),
        ("keeper audit: sent, no outcome", k.unended),
    ):
        if items:
            lines += ["", f"### {name} ({len(items)})", "", *[f"- {i}" for i in items[:10]]]
    for name, items in problems.items():
        lines += ["", f"## {name} ({len(items)})", "", *[f"- {i}" for i in items[:30]]]
    lines += [
        "",
        "What is checked: every 2xx intent's digest is in exactly one NonceUsed event and its record says "
        "`confirmed` with that transaction, or it is `failed`/`rejected` with a reason and absent from the "
        "chain; each agent's used nonces are 0..n−1 once each; each intent's transaction has exactly one "
        "effect event of its type; no NonceUsed digest lacks a 2xx answer; no intent record is "
        "`received`/`submitted` and no transaction request `pending` once settled; then a second relayer "
        "indexes the chain into an empty database and its positions, position events, agent counters and "
        "chain-derived stream events must equal the soak database's, which must also match the router's "
        "views; the two relayers' agent and position API answers must be equal.",
        "",
    ]
    return "\n".join(lines)
