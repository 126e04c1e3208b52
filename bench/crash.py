"""The crash figure for the bench report: a short soak (bench/soak) — intents from several agents
while the relayer is SIGKILLed and restarted — run and audited by bench.soak's own functions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.soak.run import SoakConfig, SoakResult, run, summary_numbers


@dataclass
class CrashResult:
    soak: SoakResult

    @property
    def lost(self) -> int:
        return len(self.soak.findings.lost)

    @property
    def doubled(self) -> int:
        return len(self.soak.findings.doubled)

    @property
    def pending(self) -> tuple[int, int]:
        f = self.soak.findings
        return len(f.pending_intents), len(f.pending_tx_requests)

    @property
    def rate(self) -> float:
        """Intents sent per second of the client phase (kills and restarts included)."""
        return int(summary_numbers(self.soak)["sent"]) / self.soak.client_wall_s

    @property
    def confirmed_rate(self) -> float:
        return self.soak.findings.confirmed / self.soak.client_wall_s


def run_crash(config: SoakConfig, progress: Callable[[str], None]) -> CrashResult:
    return CrashResult(run(config, progress=lambda msg: progress("  " + msg)))
