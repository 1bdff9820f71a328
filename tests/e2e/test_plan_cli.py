"""``alignbf plan`` as typed: cache share, wall time and budget warnings in --json and --strict."""

from __future__ import annotations

import json
from pathlib import Path

from alignbf.engine.plan import ASSUMED_CALL_LATENCY_S
from tests.conftest import cli
from tests.unit.test_plan_cache_time import plan_of


def test_plan_json_and_strict_carry_the_cache_and_time_estimates(tmp_path: Path) -> None:
    plan_of(tmp_path, usd=1000)
    config = tmp_path / "study-3-sequential-None.yaml"
    assert cli("plan", str(config), "--strict").returncode == 0
    config.write_text(config.read_text().replace("usd: 1000", "usd: 0.0001"))
    shown = cli("plan", str(config))
    assert shown.returncode == 0, shown.stderr
    assert (
        "Prompt caching and wall time" in shown.stdout
        and "with the expected prompt" in shown.stdout
    )
    assert cli("plan", str(config), "--strict").returncode == 1
    data = json.loads(cli("plan", str(config), "--json").stdout)
    assert data["wall_time_s"] == 27.0 and data["assumed_call_latency_s"] == ASSUMED_CALL_LATENCY_S
    endpoint = data["endpoints"][0]
    assert 0 < endpoint["cached_input_tokens"] < endpoint["input_tokens"]
    assert endpoint["cached_cost_usd"] < endpoint["cost_usd"]
    assert endpoint["wall_time_limited_by"] == "parallelism" and len(data["warnings"]) == 2
