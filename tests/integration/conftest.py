"""The loopback OpenAI-compatible server (``alignbf serve-synthetic``) as a subprocess fixture."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FAST_ENV = {"ALIGNBF_HTTP_TIMEOUT_S": "1", "ALIGNBF_BACKOFF_S": "0.02"}
"""Client settings for tests: a 1 s read timeout and millisecond backoff (same logic)."""
STALL = ("--stall-s", "3")
"""Server stalls outlast the 1 s client read timeout."""


@dataclass
class Server:
    """A running loopback server."""

    url: str
    process: subprocess.Popen[str]

    @property
    def root(self) -> str:
        """The server address without ``/v1``."""
        return self.url.removesuffix("/v1")

    def ledger(self) -> list[dict[str, Any]]:
        """The server's ledger: one entry per chat-completion request."""
        with urllib.request.urlopen(self.root + "/_ledger", timeout=10) as response:
            entries: list[dict[str, Any]] = json.load(response)
        return entries


@contextmanager
def running_server(*args: str, log: Path | None = None) -> Iterator[Server]:
    """Start ``alignbf serve-synthetic --port 0 ARGS`` and stop it (its whole group) after."""
    err = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "alignbf", "serve-synthetic", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
        start_new_session=True,
        env={**os.environ},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on "), f"server did not start: {line!r}"
        yield Server(line.split()[-1], process)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        if log:
            err.close()  # type: ignore[union-attr]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """A factory: ``serve("--fault-rate", "0.2")`` starts a server, stopped after the test."""
    stack: list[Any] = []

    def start(*args: str) -> Server:
        context = running_server(*args, log=tmp_path / f"server-{len(stack)}.log")
        server = context.__enter__()
        stack.append(context)
        return server

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)


# The endpoints file of the batch tests: one batch endpoint on a port the tests replace.
BATCH_ENDPOINTS = """\
endpoints:
  local-batch:
    base_url: http://127.0.0.1:9/v1
    model: local
    serves: llama-3.3-70b
    price_input_per_mtok: 1.0
    price_output_per_mtok: 2.0
    max_connections: 4
    batch: true
"""
