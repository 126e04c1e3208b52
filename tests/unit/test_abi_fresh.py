"""abi/*.json (written by scripts/export-abi) must match a fresh forge build of the contracts.

The relayer and third-party clients read the committed ABIs; a contract change that is not
re-exported would leave them encoding calls, decoding events and naming reverts against an old
interface. scripts/test runs forge before pytest, so out/ is normally fresh; when an artifact is
missing or older than the contract sources, this test runs `forge build` itself.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ABI_DIR = ROOT / "abi"
OUT_DIR = ROOT / "out"
SOURCES = ROOT / "contracts" / "src"
LOCAL_FORGE = ROOT / "node_modules" / "@foundry-rs" / "forge-linux-amd64" / "bin" / "forge"
FIX = "run scripts/export-abi"

# What scripts/export-abi exports; a missing file is as stale as a wrong one.
EXPECTED = {
    "TradeRouter",
    "AgentRegistry",
    "TokenRegistry",
    "Vault",
    "PriceOracle",
    "OraclePriceVenue",
    "EquityToken",
    "MockUSDC",
    "IExecutionVenue",
}

EXPORTED = sorted(p.stem for p in ABI_DIR.glob("*.json"))


def _artifact(name: str) -> Path:
    return OUT_DIR / f"{name}.sol" / f"{name}.json"


def _forge() -> str | None:
    for candidate in (os.environ.get("FORGE"), shutil.which("forge"), str(LOCAL_FORGE)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _needs_build(names: list[str]) -> bool:
    newest_source = max((p.stat().st_mtime for p in SOURCES.rglob("*.sol")), default=0.0)
    for name in names:
        artifact = _artifact(name)
        if not artifact.is_file() or artifact.stat().st_mtime < newest_source:
            return True
    return False


@pytest.fixture(scope="module")
def build_output() -> Path:
    """out/ with an artifact for every exported contract, built with forge when missing or stale."""
    names = sorted(set(EXPORTED) | EXPECTED)
    if _needs_build(names):
        forge = _forge()
        if forge is None:
            pytest.fail("out/ is missing or stale and forge is not installed: run scripts/test")
        result = subprocess.run([forge, "build"], cwd=ROOT, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            pytest.fail(f"forge build failed:\n{result.stdout}\n{result.stderr}")
    return OUT_DIR


def _build_abi(out_dir: Path, name: str) -> list[Any]:
    path = out_dir / f"{name}.sol" / f"{name}.json"
    assert path.is_file(), f"abi/{name}.json has no contract {name} in the build ({path}): {FIX}"
    abi = json.loads(path.read_text())["abi"]
    assert isinstance(abi, list)
    return abi


def test_every_contract_is_exported() -> None:
    missing = sorted(EXPECTED - set(EXPORTED))
    assert not missing, f"abi/ lacks {', '.join(f'{m}.json' for m in missing)}: {FIX}"


@pytest.mark.parametrize("name", EXPORTED)
def test_abi_matches_fresh_build(build_output: Path, name: str) -> None:
    committed = json.loads((ABI_DIR / f"{name}.json").read_text())
    built = _build_abi(build_output, name)
    if committed != built:
        committed_items = {json.dumps(e, sort_keys=True) for e in committed}
        built_items = {json.dumps(e, sort_keys=True) for e in built}
        added = sorted(_label(e) for e in built_items - committed_items)
        removed = sorted(_label(e) for e in committed_items - built_items)
        pytest.fail(
            f"abi/{name}.json differs from the fresh build (added: {added or '-'}; "
            f"removed or changed: {removed or '-'}): {FIX}"
        )


@pytest.mark.parametrize("name", EXPORTED)
def test_abi_file_is_canonical(name: str) -> None:
    """Pretty-printed with sorted keys, as the script writes it, so diffs stay small and stable."""
    text = (ABI_DIR / f"{name}.json").read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n", (
        f"abi/{name}.json is not in the exporter's format: {FIX}"
    )


def _label(entry_json: str) -> str:
    entry = json.loads(entry_json)
    kind = entry.get("type", "?")
    inputs = ",".join(i.get("type", "?") for i in entry.get("inputs", []))
    return f"{kind} {entry.get('name', '')}({inputs})".strip()
