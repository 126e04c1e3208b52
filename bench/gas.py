"""Router gas per call, as forge measures it now: `forge test` on contracts/test/TradeRouter.gas.t.sol
with -vv prints each scenario's execution gas and its transaction total with the 21,000 base (method:
bench/gas.md). Nothing here is a stored number."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from relayer.chain.anvil import foundry_binary

REPO = Path(__file__).resolve().parent.parent
GAS_TEST = "contracts/test/TradeRouter.gas.t.sol"
_LINE = re.compile(r"^\s*(\w+) (execution|total with base|refund|calldata gas): (\d+)\s*$", re.M)

# The scenarios the table shows, in the order of the issue: open / add / reduce / ladder / exit.
SCENARIOS = (
    ("openPosition", "open (typical)"),
    ("openPosition_firstEver", "open (first ever)"),
    ("addToPosition", "add"),
    ("reducePosition_partial", "reduce (partial)"),
    ("reducePosition_close", "reduce (close)"),
    ("updateExitLadder", "ladder update"),
    ("executeExit_stopLossClose", "exit (stop-loss closes)"),
    ("executeExit_takeProfitPartial", "exit (take-profit 50 %)"),
    ("executeExit_twoRules", "exit (two rules)"),
)


@dataclass(frozen=True)
class GasFigure:
    scenario: str
    label: str
    execution: int
    total: int  # with the 21,000 base, calldata and capped refund


def parse(output: str) -> dict[str, GasFigure]:
    values: dict[str, dict[str, int]] = {}
    for name, what, number in _LINE.findall(output):
        values.setdefault(name, {})[what] = int(number)
    labels = dict(SCENARIOS)
    return {
        name: GasFigure(name, labels.get(name, name), v["execution"], v["total with base"])
        for name, v in values.items()
        if "execution" in v and "total with base" in v
    }


def measure() -> dict[str, GasFigure]:
    out = subprocess.run(
        [foundry_binary("forge"), "test", "--match-path", GAS_TEST, "-vv"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"forge test failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    figures = parse(out.stdout)
    missing = [name for name, _ in SCENARIOS if name not in figures]
    if missing:
        raise RuntimeError(f"forge printed no gas for {', '.join(missing)}")
    return figures
