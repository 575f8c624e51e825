"""Invalid settings of the EPR exchange, told to operators without the values given: tokens and
token hashes are secrets, and a mistyped one is a secret nearly right."""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO, TypeVar

from pydantic import ValidationError

S = TypeVar("S")


def describe_without_values(error: ValidationError) -> str:
    lines = []
    for item in error.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"PODLINK_{str(item['loc'][0]).upper()}: {message}" if item["loc"] else message)
    return "; ".join(lines)


def load_or_report(settings: Callable[[], S], command: str, err: TextIO | None = None) -> S | None:
    """`settings()`, read from the environment; None once what is wrong is told on `err`
    (standard error), as `podlink <command>: invalid setting: ...`."""
    try:
        return settings()
    except ValidationError as exc:
        print(f"podlink {command}: invalid setting: {describe_without_values(exc)}", file=err or sys.stderr)
        return None
