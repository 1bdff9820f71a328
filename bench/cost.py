"""What prompt caching saves on Study 2, measured through the loopback server's emulated cache.

Runs a 64-simulation slice of Study 2 (its 16 languages x 4 of its alignment ratios, one
replicate; 10 agents, 15 sequential turns: 9,600 calls) through ``alignbf serve-synthetic
--prefix-cache-tokens N`` with every call priced as GPT-4o-mini (input $0.15, cached input
$0.075, output $0.60 per million tokens), and prints:

* ``extends_share``: of all prompt tokens sent, the share in prompts that extend the same
  agent's previous prompt (its messages come first, unchanged), from the requests themselves;
  only an agent's first prompt should not (goal: 0.9 or more);
* ``repeated_share``: the share of prompt tokens that repeat the same agent's previous
  prompt (what an ideal per-agent prefix cache could serve);
* ``plan_share``: the repeated share as ``alignbf plan`` predicts it from its token model;
* ``cached_share``: the share the emulated server reported as cached
  (``usage.prompt_tokens_details.cached_tokens``; whole 64-token blocks only, LRU-bounded);
* ``cost_ratio``: the run's cost from the server's reports over the same calls priced
  without caching;
* ``batch_ratio``: the same simulations run again through the server's batch API
  (``alignbf run --batch``; ``batch_discount`` 0.5 as OpenAI's): their cost over the same
  calls priced interactively, both from the usage the server reported (cached tokens
  included: the server's cache still holds the first run's prefixes);
  ``batch_vs_cached``: over the interactive run's cost.

Run from the repository root: ``python bench/cost.py [--concurrency 64]
[--cache-tokens N]``. The last line is the headline. A benchmark prints numbers; it
never passes or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_runner import start_server

from alignbf.config import assets
from alignbf.config.endpoints import Endpoint
from alignbf.config.study import load_study
from alignbf.config.yamlfile import load_yaml
from alignbf.engine.plan import make_plan
from alignbf.engine.runner import run_study
from alignbf.transport.backend import ChatRequest, Completion
from alignbf.transport.client import endpoints_backend

RATIOS = [0.0, 0.3, 0.7, 1.0]
GPT_4O_MINI = {
    "price_input_per_mtok": 0.15,
    "price_cached_input_per_mtok": 0.075,
    "price_output_per_mtok": 0.60,
}


def write_study(work: Path, url: str, ratios: list[float], batch: bool = False) -> Path:
    """Study 2 with ``ratios``, one replicate, every call priced as GPT-4o-mini at ``url``."""
    endpoint = {"base_url": url, "model": "gpt-4o-mini", "serves": "llama-3.3-70b",
                "max_connections": 64, "batch": batch, **GPT_4O_MINI}  # fmt: skip
    (work / "endpoints.yaml").write_text(json.dumps({"endpoints": {"mini": endpoint}}))
    study = load_yaml(assets.path("configs", "study2.yaml"))
    study["factors"]["alignment_ratios"] = ratios
    study.update(replicates=1, endpoints={"llama-3.3-70b": "mini"}, budget={},
                 endpoints_file=str(work / "endpoints.yaml"), name="bench-cost")  # fmt: skip
    study.pop("prereg", None)
    path = work / "study.yaml"
    path.write_text(json.dumps(study))
    return path


def _chars(messages: tuple[dict[str, str], ...]) -> int:
    return sum(len(m.get("content") or "") for m in messages)


def _common_chars(old: tuple[dict[str, str], ...], new: tuple[dict[str, str], ...]) -> int:
    """Characters of ``new`` that repeat ``old`` from the start (whole messages, then a head)."""
    total = 0
    for a, b in zip(old, new, strict=False):
        if a == b:
            total += len(a.get("content") or "")
            continue
        if a.get("role") == b.get("role"):
            x, y = a.get("content") or "", b.get("content") or ""
            total += next((i for i, (p, q) in enumerate(zip(x, y, strict=False)) if p != q),
                          min(len(x), len(y)))  # fmt: skip
        break
    return total


def prefix_shares(sent: list[ChatRequest]) -> tuple[float, float]:
    """(share of prompt characters in prompts that extend the same agent's previous prompt,
    share of prompt characters that repeat it)."""
    last: dict[tuple[str, int], tuple[dict[str, str], ...]] = {}
    extending = repeated = total = 0
    for request in sorted(sent, key=lambda r: (r.sim_id, r.agent, r.turn)):
        previous = last.get((request.sim_id, request.agent))
        size = _chars(request.messages)
        total += size
        if previous is not None:
            repeated += _common_chars(previous, request.messages)
            if request.messages[: len(previous)] == previous:
                extending += size
        last[(request.sim_id, request.agent)] = request.messages
    return extending / total, repeated / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-tokens", type=int, default=16_000_000,
                        help="capacity of the emulated cache (the default holds every "
                        "agent's prompt of 64 simulations in flight)")  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    server, url = start_server("--prefix-cache-tokens", str(args.cache_tokens))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            config = write_study(work, url, RATIOS)
            predicted = make_plan(load_study(config), config)
            backend, name, extra = endpoints_backend(config, None)
            sent: list[ChatRequest] = []
            complete = backend.complete

            async def recording(request: ChatRequest) -> Completion:
                sent.append(request)
                return await complete(request)

            backend.complete = recording  # type: ignore[method-assign]
            wall = time.perf_counter()
            result = run_study(config, backend=backend, backend_name=name, run_dir=work / "run",
                               concurrency=args.concurrency, manifest_extra=extra)  # fmt: skip
            wall = time.perf_counter() - wall
            with sqlite3.connect(work / "run" / "run.sqlite") as conn:
                rows = conn.execute(
                    "SELECT prompt_tokens, completion_tokens, cached_tokens, cost_usd FROM calls"
                ).fetchall()
            batched = work / "batch"
            batched.mkdir()
            os.environ.setdefault("ALIGNBF_BATCH_POLL_S", "0.05")
            os.environ.setdefault("ALIGNBF_BATCH_IDLE_S", "0.2")
            config = write_study(batched, url, RATIOS, batch=True)
            backend, name, extra = endpoints_backend(config, None, batch=True)
            batch_wall = time.perf_counter()
            run_study(config, backend=backend, backend_name=name, run_dir=batched / "run",
                      concurrency=args.concurrency, manifest_extra=extra)  # fmt: skip
            batch_wall = time.perf_counter() - batch_wall
            with sqlite3.connect(batched / "run" / "run.sqlite") as conn:
                batch_rows = conn.execute(
                    "SELECT prompt_tokens, completion_tokens, cost_usd, cached_tokens FROM calls"
                ).fetchall()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait()
    price = Endpoint(base_url=url, model="gpt-4o-mini", serves="m", **GPT_4O_MINI)
    prompt = sum(r[0] for r in rows)
    cached = sum(r[2] or 0 for r in rows)
    paid = sum(r[3] for r in rows)
    uncached = sum(price.cost(r[0], r[1]) or 0.0 for r in rows)
    plan = predicted.endpoints[0]
    sims = result.progress.total
    statuses = dict(result.progress.statuses)
    print(f"simulations={sims} calls={len(rows)} wall_s={wall:.1f} "
          f"cache_tokens={args.cache_tokens} statuses={statuses}")  # fmt: skip
    print(f"prompt_tokens={prompt} cached_tokens={cached} cost_usd={paid:.4f} "
          f"uncached_cost_usd={uncached:.4f}")  # fmt: skip
    print(f"plan: input_tokens={plan.input_tokens} cached_input_tokens={plan.cached_input_tokens} "
          f"cost_usd={plan.cost_usd:.4f} cached_cost_usd={plan.cached_cost_usd:.4f}")  # fmt: skip
    batch_cost = sum(r[2] for r in batch_rows)
    # the same calls at interactive prices, with the cached tokens the server reported for
    # them (its prompt cache still holds the interactive run's prefixes)
    batch_interactive = sum(price.cost(r[0], r[1], r[3]) or 0.0 for r in batch_rows)
    batch_cached = sum(r[3] or 0 for r in batch_rows) / max(1, sum(r[0] for r in batch_rows))
    print(f"batch: calls={len(batch_rows)} cost_usd={batch_cost:.4f} "
          f"cached_share={batch_cached:.4f} interactive_usd={batch_interactive:.4f} "
          f"wall_s={batch_wall:.1f}")  # fmt: skip
    extends, repeated = prefix_shares(sent)
    print(f"extends_share={extends:.4f} repeated_share={repeated:.4f} "
          f"plan_share={plan.cache_share:.4f} cached_share={cached / prompt:.4f} "
          f"cost_ratio={paid / uncached:.4f} batch_ratio={batch_cost / batch_interactive:.4f} "
          f"batch_vs_cached={batch_cost / paid:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
