"""Throughput under random faults, as a ratio of fault-free throughput (loopback server).

Runs ``SIMS`` simulations of 15 calls (3 agents x 5 turns), at most 64 requests in flight
(the endpoint's ``max_connections``) and ``--lanes`` simulations in flight, against
``alignbf serve-synthetic --latency-ms 200``, once fault-free and once with
``--fault-rate 0.2`` (every transient kind: 429s, 5xx, stalls, resets, broken bodies),
and prints calls per second of each and their ratio. Read timeouts are 5 s
(``ALIGNBF_HTTP_TIMEOUT_S``), so a stalled reply costs a lane at most 5 s, not the default
120 s (less once the client's stall bound has learnt the endpoint's latency;
``ALIGNBF_STALL_FACTOR=0`` turns it off for comparison).

Last line: ``fault_ratio=... calls_per_s_clean=... calls_per_s_faults=... cuts=...``
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_runner import start_server, write_study

from alignbf.engine.runner import run_study
from alignbf.transport.client import endpoints_backend


def _run(sims: int, latency_ms: float, fault_rate: float, lanes: int) -> tuple[float, int, int]:
    """(calls per second, calls, concurrency cuts) of one run."""
    server, url = start_server("--latency-ms", str(latency_ms), "--fault-rate", str(fault_rate))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            study = write_study(Path(tmp), url, sims * 15, 64, agents=3, turns=5)
            backend, name, extra = endpoints_backend(study, None)
            start = time.perf_counter()
            result = run_study(study, backend=backend, backend_name=name,
                               run_dir=Path(tmp) / "run", concurrency=lanes,
                               manifest_extra=extra)  # fmt: skip
            wall = time.perf_counter() - start
            cuts = sum(s.cuts for s in result.throttled.values()) if result.throttled else 0
            return result.progress.calls / wall, result.progress.calls, cuts
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sims", type=int, default=1024)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--lanes", type=int, default=64, help="Simulations in flight.")
    args = parser.parse_args()
    os.environ.setdefault("ALIGNBF_HTTP_TIMEOUT_S", "5")
    clean, n, _ = _run(args.sims, args.latency_ms, 0.0, args.lanes)
    faulty, m, cuts = _run(args.sims, args.latency_ms, args.fault_rate, args.lanes)
    print(f"{args.sims} simulations of 15 calls, 64 requests and {args.lanes} simulations in "
          f"flight, {args.latency_ms:g} ms; "
          f"fault rate {args.fault_rate:g}: {n} and {m} calls")  # fmt: skip
    print(
        f"fault_ratio={faulty / clean:.2f} calls_per_s_clean={clean:.1f} "
        f"calls_per_s_faults={faulty:.1f} cuts={cuts}"
    )


if __name__ == "__main__":
    main()
