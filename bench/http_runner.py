"""HTTP overhead of the alignbf runner and client, beside a plain openai SDK loop.

Starts ``alignbf serve-synthetic --latency-ms L``, runs a study of about N calls
through ``run_study`` with C simulations in flight (an agent speaks after the one
before it, so C simulations are C calls in flight), then replays the very same
requests through ``openai.AsyncOpenAI`` under ``asyncio.Semaphore(C)``. For each:

* efficiency = (N x L / C) / wall time (1.0 = no overhead beyond the server's latency);
* client CPU per call = process CPU time / N (the server runs in another process).

Simulations have the shape of the paper's studies (10 agents, 15 turns: 150 calls
each), so the default N = 9600 is one wave of C = 64 simulations; ``--agents 4
--turns 4 --calls 2048`` gives short conversations, where the one-time costs (the
first call to an endpoint goes alone, store set-up) weigh more.

Run from the repository root: ``python bench/http_runner.py [--calls N]``. The last
line is the headline. A benchmark prints numbers; it never passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from alignbf.engine.runner import run_study
from alignbf.transport.backend import ChatRequest, Completion
from alignbf.transport.client import endpoints_backend

STUDY = """
name: bench-http
agents: {{count: {agents}, target: {agents}}}
conversation: {{turns: {turns}}}
factors:
  alignment_ratios: [0.0, 1.0]
  languages: [en, ja]
  models: [llama-3.3-70b]
replicates: {replicates}
sampling: {{max_tokens: 128}}
endpoints: {{llama-3.3-70b: bench}}
endpoints_file: {endpoints}
"""
ENDPOINTS = """
endpoints:
  bench:
    base_url: {url}
    model: local
    serves: llama-3.3-70b
    price_input_per_mtok: 0.0
    price_output_per_mtok: 0.0
    max_connections: {concurrency}
"""


def start_server(*options: str) -> tuple[subprocess.Popen[str], str]:
    """``alignbf serve-synthetic --port 0 OPTIONS`` in its own process group; returns it and
    its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "alignbf", "serve-synthetic", "--port", "0", *options],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("listening on "):
        raise SystemExit(f"server did not start: {line!r}")
    return process, line.split()[-1]


def write_study(
    work: Path, url: str, calls: int, concurrency: int, agents: int = 10, turns: int = 15
) -> Path:
    """A study of about ``calls`` calls in whole waves of ``concurrency`` simulations."""
    per_sim = agents * turns
    sims = max(concurrency, round(calls / per_sim / concurrency) * concurrency)
    (work / "endpoints.yaml").write_text(ENDPOINTS.format(url=url, concurrency=concurrency))
    study = work / "study.yaml"
    study.write_text(
        STUDY.format(
            agents=agents, turns=turns, replicates=sims // 4, endpoints=work / "endpoints.yaml"
        )
    )
    return study


def run_alignbf(study: Path, run_dir: Path, concurrency: int) -> tuple[int, float, float, list]:
    """(calls, wall s, CPU s, the requests sent) of one run through the alignbf runner."""
    backend, name, extra = endpoints_backend(study, None)
    sent: list[ChatRequest] = []
    complete = backend.complete

    async def recording(request: ChatRequest) -> Completion:
        sent.append(request)
        return await complete(request)

    backend.complete = recording  # type: ignore[method-assign]
    wall, cpu = time.perf_counter(), time.process_time()
    result = run_study(study, backend=backend, backend_name=name, run_dir=run_dir,
                       concurrency=concurrency, manifest_extra=extra)  # fmt: skip
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert result.complete, result.progress.statuses
    return result.progress.calls, wall, cpu, sent


def run_sdk(url: str, requests: list[ChatRequest], concurrency: int) -> tuple[float, float]:
    """(wall s, CPU s) of the same requests through the openai SDK, ``concurrency`` at a time."""
    import openai

    async def main() -> None:
        client = openai.AsyncOpenAI(base_url=url, api_key="bench", max_retries=0, timeout=60)
        slots = asyncio.Semaphore(concurrency)

        async def one(r: ChatRequest) -> None:
            async with slots:
                reply = await client.chat.completions.create(
                    model="local", messages=list(r.messages), temperature=r.temperature,  # type: ignore[arg-type]
                    top_p=r.top_p, max_tokens=r.max_tokens, seed=r.seed,
                )  # fmt: skip
                assert reply.choices[0].message.content

        try:
            async with asyncio.TaskGroup() as tg:
                for r in requests:
                    tg.create_task(one(r))
        finally:
            await client.close()

    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(main())
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=9600)
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--turns", type=int, default=15)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    args = parser.parse_args()
    latency, c = args.latency_ms / 1000.0, args.concurrency
    server, url = start_server("--latency-ms", str(args.latency_ms))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            study = write_study(Path(tmp), url, args.calls, c, args.agents, args.turns)
            n, wall, cpu, sent = run_alignbf(study, Path(tmp) / "run", c)
            sdk_wall, sdk_cpu = run_sdk(url, sent, c)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait()
    ideal = n * latency / c
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"calls={n} concurrency={c} latency_ms={args.latency_ms:g} ideal_wall_s={ideal:.2f} "
        f"agents={args.agents} turns={args.turns}"
    )
    print(f"machine: {os.cpu_count()} cpus, load average {load} (other work skews both sides)")
    print(f"alignbf: wall_s={wall:.2f} cpu_s={cpu:.2f}")
    print(f"openai sdk: wall_s={sdk_wall:.2f} cpu_s={sdk_cpu:.2f}")
    print(
        f"efficiency={ideal / wall:.2f} cpu_ms_per_call={1000 * cpu / n:.2f} "
        f"sdk_efficiency={ideal / sdk_wall:.2f} sdk_cpu_ms_per_call={1000 * sdk_cpu / n:.2f}"
    )


if __name__ == "__main__":
    main()
