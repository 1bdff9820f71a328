"""Refusals and content filters are counted per simulation and cell; the pre-flight check
refuses a structured-output setting the server rejects.

A world that plants refusals by condition (``refusal``) runs in process; content-filter
finishes and response_format rejections go through the loopback server.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from alignbf.analysis.attrition import attrition
from alignbf.config import assets
from alignbf.config.endpoints import Endpoint
from alignbf.engine.synthetic import load_world
from alignbf.errors import EndpointError
from alignbf.report.tables import attrition_view
from alignbf.scoring.scores import score_run, study_of
from alignbf.store.store import Store
from alignbf.transport.preflight import check_structured_output
from alignbf.transport.routes import make_route
from tests.conftest import cli
from tests.integration.conftest import FAST_ENV, Server


def _study(tmp_path: Path, *, replicates: int, fmt: str = "tagged", endpoint: str = "") -> Path:
    endpoints = endpoint or "together-llama-3.3-70b"
    endpoints_file = (
        tmp_path / "endpoints.yaml" if endpoint else assets.path("configs", "endpoints.yaml")
    )
    config = tmp_path / "refusals.yaml"
    config.write_text(
        "name: refusals\nagents: {count: 6, target: 6}\n"
        f"conversation: {{turns: 6, channel_format: {fmt}, invalid_threshold: 0.9}}\n"
        "factors: {alignment_ratios: [0.0, 1.0], languages: [en, ja], models: [llama-3.3-70b]}\n"
        f"replicates: {replicates}\nendpoints: {{llama-3.3-70b: {endpoints}}}\n"
        f"endpoints_file: {endpoints_file}\n"
    )
    return config


def _cells(run_dir: Path) -> pd.DataFrame:
    scores = score_run(run_dir)
    store = Store(run_dir, readonly=True)
    try:
        return attrition(store, study_of(store), scores.simulations)
    finally:
        store.close()


def test_refusal_shares_by_condition_recover_the_planted_rates(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    ran = cli("run", str(_study(tmp_path, replicates=5)), "--world", "refusal",
              "--run-dir", str(run_dir), "--quiet")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    world = load_world("refusal")
    cells = _cells(run_dir)
    scores = pd.read_csv(run_dir / "scores" / "simulations.csv")
    # every simulation is scored, however many of its replies refuse
    assert len(scores) == 20 and scores["refusal_share"].notna().all()
    assert (cells["analysed"] == 5).all()
    for ratio, rate in ((0.0, world.refusal_rate_unaligned), (1.0, world.refusal_rate_aligned)):
        part = cells[cells["alignment_ratio"] == ratio]
        replies = int(part["replies"].sum())
        share = part["refusals"].sum() / replies
        se = math.sqrt(rate * (1 - rate) / replies)
        # replies of one conversation are not independent of each other's refusal draw,
        # but the draw is per request: binomial within 4 SE (plus the patterns' misses)
        assert abs(share - rate) < 4 * se + 0.02, (ratio, share, rate)
        per_sim = scores[scores["alignment_ratio"] == ratio]["refusal_share"].mean()
        assert per_sim == pytest.approx(share)
    # the report's attrition table shows the shares, also when cells collapse to languages
    view = attrition_view(cells)
    assert view["refusals"].str.endswith("%").all() and "format_failures" in view
    collapsed = attrition_view(cells, max_rows=2)
    en = cells[cells["language"] == "en"]
    assert collapsed.set_index("language").loc["en", "refusals"] == (
        f"{100 * en['refusals'].sum() / en['replies'].sum():.1f}%"
    )
    # most replies refusing: still scored; agents at rate 0 refuse nothing
    world_file = tmp_path / "mostly.yaml"
    text = (assets.path("configs", "synthetic", "refusal.yaml")).read_text()
    text = text.replace("name: refusal", "name: mostly").replace(
        "refusal_rate_aligned: 0.3", "refusal_rate_aligned: 0.9"
    )
    world_file.write_text(text.replace("refusal_rate_unaligned: 0.05", "refusal_rate_unaligned: 0"))
    mostly = tmp_path / "mostly"
    ran = cli("run", str(_study(tmp_path, replicates=1)), "--world", str(world_file),
              "--run-dir", str(mostly), "--quiet")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    cells = _cells(mostly).set_index("alignment_ratio")
    assert (cells["analysed"] == 1).all()
    assert (cells.loc[1.0, "refusal_share"] > 0.75).all()
    assert (cells.loc[0.0, "refusals"] == 0).all()


def _endpoints_file(tmp_path: Path, url: str, structured: str) -> None:
    (tmp_path / "endpoints.yaml").write_text(
        "endpoints:\n  loopback:\n"
        f"    base_url: {url}\n    model: synthetic\n    serves: llama-3.3-70b\n"
        f"    max_connections: 4\n    structured_output: {structured}\n"
    )


def test_content_filter_finishes_are_counted_per_cell_over_http(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    server = serve("--world", "null", "--content-filter-rate", "0.15", "--fault-seed", "3")
    _endpoints_file(tmp_path, server.url, "off")
    run_dir = tmp_path / "run"
    config = _study(tmp_path, replicates=1, endpoint="loopback")
    ran = cli("run", str(config), "--backend", "endpoints", "--run-dir", str(run_dir),
              "--quiet", env=FAST_ENV, timeout=120)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    filtered = [e for e in server.ledger() if e["fault"] == "content_filter"]
    conn = sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True)
    stored = conn.execute("SELECT count(*) FROM calls WHERE finish_reason = 'content_filter'")
    assert stored.fetchone()[0] == len(filtered) > 0
    cells = _cells(run_dir)
    assert cells["content_filter_calls"].sum() == len(filtered)
    assert abs(len(filtered) / cells["replies"].sum() - 0.15) < 0.06
    # an empty filtered reply breaks the channel format and is counted as such
    assert (cells["format_failures"] >= cells["content_filter_calls"]).all()
    scores = pd.read_csv(run_dir / "scores" / "simulations.csv")
    assert scores["content_filter_calls"].sum() == len(filtered)


def test_preflight_names_the_rejected_structured_output(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    server = serve("--reject-response-format", "json_schema")
    _endpoints_file(tmp_path, server.url, "json_schema")
    run_dir = tmp_path / "run"
    config = _study(tmp_path, replicates=1, fmt="json", endpoint="loopback")
    ran = cli("run", str(config), "--backend", "endpoints", "--run-dir", str(run_dir),
              "--quiet", env=FAST_ENV)  # fmt: skip
    assert ran.returncode == 1
    line = ran.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "endpoint loopback" in line
    assert "structured_output json_schema rejected by the server (400: " in line
    assert line.endswith("set structured_output: json_object or off")
    # one probe, nothing else: no simulation was sent
    assert [e["fault"] for e in server.ledger()] == ["response_format:json_schema"]
    assert not (run_dir / "run.sqlite").exists()


def test_preflight_passes_a_supported_setting_and_skips_off(serve: Callable[..., Server]) -> None:
    server = serve("--reject-response-format", "json_schema")

    def route(mode: str):  # type: ignore[no-untyped-def]
        endpoint = Endpoint(base_url=server.url, model="synthetic", serves="m",
                            structured_output=mode)  # type: ignore[arg-type]  # fmt: skip
        return make_route("loopback", endpoint, None, f"loopback+{mode}")

    check_structured_output(route("json_object"))
    check_structured_output(route("off"))
    with pytest.raises(EndpointError, match="json_schema rejected"):
        check_structured_output(route("json_schema"))
    sent = [e["fault"] for e in server.ledger()]
    assert sent == [None, "response_format:json_schema"]
