"""What the benches print while they run: progress on stderr, so stdout holds only figures."""
from __future__ import annotations

import sys


def progress(text: str) -> None:
    # Starts with a carriage return to replace a live progress line, if one is showing.
    start = "\r\x1b[K" if sys.stderr.isatty() else ""
    print(f"{start}podlink bench: {text}", file=sys.stderr, flush=True)
