"""The SPA contract's example files, as tests read them (`../shared/contracts/`)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONTRACTS = Path(__file__).resolve().parents[3] / "shared" / "contracts"
EXAMPLES = CONTRACTS / "examples"


def valid_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.json"))


def invalid_files() -> list[Path]:
    return sorted((EXAMPLES / "invalid").glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    raw = json.loads(path.read_text())
    raw.pop("_why", None)  # documents the example; not part of the event
    return raw


def example(name: str) -> dict[str, Any]:
    return load(EXAMPLES / f"{name}.json")
