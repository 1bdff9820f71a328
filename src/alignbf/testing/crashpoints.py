"""Named crash points for kill-and-resume tests.

``ALIGNBF_TEST_CRASHPOINT=<name>:<n>[:SIGKILL|SIGINT|SIGTERM]`` makes the process
signal itself the n-th time it reaches the named point. Unset (always, outside
tests) the check is one global lookup.
"""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("ALIGNBF_TEST_CRASHPOINT", "")
_counts: dict[str, int] = {}


def reached(name: str) -> None:
    """Count a pass through ``name``; signal the process when the configured count is hit."""
    if not _SPEC:
        return
    parts = _SPEC.split(":")
    if parts[0] != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] == int(parts[1]):
        sig = getattr(signal, parts[2] if len(parts) > 2 else "SIGKILL")
        os.kill(os.getpid(), sig)
