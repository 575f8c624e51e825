"""Invalid settings of the EPR exchange, told to operators without the values given: tokens and
token hashes are secrets, and a mistyped one is a secret nearly right."""
from __future__ import annotations

from pydantic import ValidationError


def describe_without_values(error: ValidationError) -> str:
    lines = []
    for item in error.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"PODLINK_{str(item['loc'][0]).upper()}: {message}" if item["loc"] else message)
    return "; ".join(lines)
