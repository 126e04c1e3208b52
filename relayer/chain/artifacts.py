"""Contract ABIs (committed in `abi/`) and creation bytecode (from the forge build in `out/`)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from relayer.config import REPO_ROOT

ABI_DIR = REPO_ROOT / "abi"
OUT_DIR = REPO_ROOT / "out"


class ArtifactMissingError(FileNotFoundError):
    """A build output is not there: the contracts have not been built (`forge build`)."""


@cache
def abi(name: str, abi_dir: Path = ABI_DIR) -> list[dict[str, Any]]:
    path = abi_dir / f"{name}.json"
    if not path.exists():
        raise ArtifactMissingError(f"no ABI for {name} at {path}; run scripts/export-abi")
    data: list[dict[str, Any]] = json.loads(path.read_text())
    return data


@cache
def bytecode(name: str, out_dir: Path = OUT_DIR) -> str:
    path = out_dir / f"{name}.sol" / f"{name}.json"
    if not path.exists():
        raise ArtifactMissingError(f"no build of {name} at {path}; run `forge build` (scripts/up does)")
    code: str = json.loads(path.read_text())["bytecode"]["object"]
    return code
