"""The HTTP client against the real loopback server: accounting, set-up errors, key hygiene."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from alignbf.config import assets
from alignbf.config.endpoints import Endpoint
from alignbf.transport.backend import ChatRequest
from alignbf.transport.client import OpenAIBackend
from alignbf.transport.routes import make_route
from tests.conftest import cli
from tests.integration.conftest import FAST_ENV, STALL, Server

ENDPOINTS = """
endpoints:
  canary:
    base_url: {url}
    api_key_env: SMOKE_KEY
    model: local
    serves: llama-3.3-70b
    price_input_per_mtok: 0.5
    price_output_per_mtok: 1.5
    max_connections: 4
"""


def study_for(tmp_path: Path, url: str) -> Path:
    """The smoke study, sent to one keyed endpoint at ``url``."""
    (tmp_path / "endpoints.yaml").write_text(ENDPOINTS.format(url=url))
    text = assets.path("configs", "smoke.yaml").read_text()
    text = text.replace("local-llamacpp", "canary") + f"endpoints_file: {tmp_path}/endpoints.yaml\n"
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def run(config: Path | str, run_dir: Path, *extra: str, **env: str) -> tuple[int, str, str]:
    done = cli(
        "run", str(config), "--backend", "endpoints", "--run-dir", str(run_dir), "--quiet",
        *extra, env={**FAST_ENV, **env}, timeout=120,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def test_backend_records_usage_cost_and_fingerprint(serve: Callable[..., Server]) -> None:
    server = serve()
    endpoint = Endpoint(
        base_url=server.url, model="local", serves="m", price_input_per_mtok=1.0,
        price_output_per_mtok=2.0, max_connections=2,
    )  # fmt: skip
    backend = OpenAIBackend({"m": make_route("e", endpoint, None, "e:local")})
    messages = ({"role": "system", "content": "You are Mara."}, {"role": "user", "content": "Hi"})
    request = ChatRequest("s", 0, 1, "m", messages, 0.9, 1.0, 64, 7)

    async def twice() -> list:
        try:
            return [await backend.complete(request) for _ in range(2)]
        finally:
            await backend.aclose()

    first, second = asyncio.run(twice())
    assert first.text == second.text and first.text
    assert first.attempts == 1 and first.finish_reason == "stop"
    assert first.prompt_tokens > 0 and first.completion_tokens > 0
    assert first.cost_usd == pytest.approx(
        (first.prompt_tokens + 2 * first.completion_tokens) / 1e6
    )
    assert first.system_fingerprint == "synthetic-paper" and first.model == "local"
    assert [e["auth_sha256"] for e in server.ledger()] == [None, None]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("missing_key", "SMOKE_KEY is not set"),
        ("unreachable", "cannot reach http://127.0.0.1:1/v1"),
        ("no_v1", "does not look OpenAI-compatible"),
        ("401", "authentication failed (HTTP 401); check the key in SMOKE_KEY"),
        ("404", "model 'local' not found"),
        ("insufficient_quota", "quota or credits exhausted"),
    ],
)
def test_bad_setups_fail_in_one_line_with_at_most_one_request(
    serve: Callable[..., Server], tmp_path: Path, kind: str, expected: str
) -> None:
    forced = ("--fault-kinds", kind) if kind.isdigit() or kind == "insufficient_quota" else ()
    server = serve(*forced)
    env = {} if kind == "missing_key" else {"SMOKE_KEY": "sk-test-setup"}
    url = {"unreachable": "http://127.0.0.1:1/v1", "no_v1": server.root}.get(kind, server.url)
    code, _, err = run(study_for(tmp_path, url), tmp_path / "run", **env)
    assert code != 0
    assert len(err.strip().splitlines()) == 1, err
    assert expected in err and err.startswith("alignbf: error: endpoint canary")
    assert len(server.ledger()) <= 1


def _fragments(secret: str, size: int = 8) -> set[str]:
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def test_canary_key_never_leaves_memory(serve: Callable[..., Server], tmp_path: Path) -> None:
    secret = str(uuid.uuid4())
    key = f"sk-test-CANARY-{secret}"
    outputs = []
    chaos = serve("--fault-rate", "0.3", "--fault-seed", "11", "--fault-kinds",
                  "500,429,reset,truncated", *STALL)  # fmt: skip
    (tmp_path / "a").mkdir()
    config = study_for(tmp_path / "a", chaos.url)
    killed = run(config, tmp_path / "runs" / "a", SMOKE_KEY=key,
                 ALIGNBF_TEST_CRASHPOINT="after_commit_before_use:4")  # fmt: skip
    assert killed[0] == -9
    outputs.append(killed)
    after_kill = [p.read_bytes() for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    assert any(p.name.endswith("-wal") for p in (tmp_path / "runs").rglob("*"))
    outputs.append(run(config, tmp_path / "runs" / "a", SMOKE_KEY=key))
    assert outputs[-1][0] == 0, outputs[-1][2]
    assert {e["auth_sha256"] for e in chaos.ledger()} == {
        hashlib.sha256(f"Bearer {key}".encode()).hexdigest()
    }
    assert any(e["fault"] == "500" for e in chaos.ledger())  # its body echoes the header
    denied = serve("--fault-kinds", "401")
    (tmp_path / "b").mkdir()
    outputs.append(run(study_for(tmp_path / "b", denied.url), tmp_path / "runs" / "b",
                       SMOKE_KEY=key))  # fmt: skip
    assert outputs[-1][0] == 1
    (tmp_path / "c").mkdir()
    outputs.append(run(study_for(tmp_path / "c", "http://127.0.0.1:1/v1"), tmp_path / "runs" / "c",
                       SMOKE_KEY=key))  # fmt: skip
    assert outputs[-1][0] == 1

    needles = {key, base64.b64encode(key.encode()).decode(), *_fragments(secret)}
    needles.add(base64.b64encode(f"Bearer {key}".encode()).decode())
    blobs = after_kill + [(o + "\n" + e).encode() for _, o, e in outputs]
    files = [p for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    assert any(p.name == "run.sqlite" for p in files)
    blobs += [p.read_bytes() for p in files]
    leaks = [n for n in needles for blob in blobs if n.encode() in blob]
    assert not leaks


def test_remaining_quota_headers_pace_requests_so_none_is_over_the_quota() -> None:
    """A loopback quota of 6 requests per 0.4 s window, 4 connections, no latency: every
    answer says what is left, and the client holds new requests until the window resets
    rather than overrunning it (without pacing, most of the 36 requests would get 429)."""
    from alignbf.testing.server import ServerOptions, SyntheticServer

    async def main() -> tuple[list[dict[str, object]], OpenAIBackend]:
        state = SyntheticServer(ServerOptions(quota_requests=6, quota_window_s=0.4))
        server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        endpoint = Endpoint(base_url=f"http://127.0.0.1:{port}/v1", model="local",
                            serves="llama-3.3-70b", price_input_per_mtok=0.0,
                            price_output_per_mtok=0.0, max_connections=4)  # fmt: skip
        backend = OpenAIBackend({"m": make_route("quota", endpoint, None, "quota:local")})
        requests = [
            ChatRequest(f"s{i}", 0, 1, "m", ({"role": "user", "content": f"hi {i}"},), 0.7, 1, 9, i)
            for i in range(36)
        ]
        async with server:
            try:
                await asyncio.gather(*(backend.complete(r) for r in requests))
            finally:
                await backend.aclose()
                await asyncio.sleep(0.05)  # the server sees the connections close
        return state.ledger.entries, backend

    ledger, backend = asyncio.run(main())
    assert len(ledger) == 36 and [e for e in ledger if e["status"] != 200] == []
    assert backend.throttled() == {}
