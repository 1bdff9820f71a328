"""``alignbf plan``: the expected prompt-cache share, the cost with it, and the wall time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alignbf.config.study import load_study
from alignbf.engine.plan import (
    ASSUMED_CALL_LATENCY_S,
    DEFAULT_CONCURRENCY,
    Plan,
    make_plan,
    wall_time_bounds,
)

STUDY = """
name: tiny
agents: {{count: 2, target: 2}}
conversation: {{turns: {turns}, turn_order: {order}{window}}}
factors: {{alignment_ratios: [0.0], languages: [en], models: [gpt-4o-mini]}}
replicates: {replicates}
sampling: {{max_tokens: 64}}
endpoints: {{gpt-4o-mini: mini}}
endpoints_file: {dir}/endpoints.yaml
budget: {{usd: {usd}}}
"""
ENDPOINT = {
    "base_url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY",
    "model": "gpt-4o-mini", "serves": "gpt-4o-mini", "price_input_per_mtok": 0.15,
    "price_cached_input_per_mtok": 0.075, "price_output_per_mtok": 0.6, "max_connections": 2,
}  # fmt: skip


def plan_of(tmp_path: Path, *, turns: int = 3, order: str = "sequential", window: int | None = None,
            replicates: int = 3, usd: float = 1000.0, **endpoint: object) -> Plan:  # fmt: skip
    (tmp_path / "endpoints.yaml").write_text(
        json.dumps({"endpoints": {"mini": {**ENDPOINT, **endpoint}}})
    )
    extra = "" if window is None else f", history_window: {window}"
    text = STUDY.format(turns=turns, order=order, window=extra, replicates=replicates,
                        dir=tmp_path, usd=usd)  # fmt: skip
    path = tmp_path / f"study-{turns}-{order}-{window}.yaml"
    path.write_text(text)
    return make_plan(load_study(path), path)


def test_wall_time_bounds_arithmetic() -> None:
    bounds = wall_time_bounds(1500, 3_000_000, 150, 16, rpm=600, tpm=300_000, latency_s=3.0)
    assert bounds == {
        "critical_path": 150 * 3.0,  # 450 s: one simulation's calls one after another
        "parallelism": 1500 * 3.0 / 16,  # 281.25 s: 16 requests in flight at a time
        "requests_per_minute": 60 * 1500 / 600,  # 150 s
        "tokens_per_minute": 60 * 3_000_000 / 300_000,  # 600 s
    }
    assert set(wall_time_bounds(10, 10, 1, 1, None, None)) == {"critical_path", "parallelism"}


def test_the_cached_share_is_each_agents_previous_prompt(tmp_path: Path) -> None:
    one, two, three = (plan_of(tmp_path, turns=t).endpoints[0] for t in (1, 2, 3))
    assert one.cached_input_tokens == 0 and one.cache_share == 0
    # the prompts of turns 1..T-1 are what the prompts of turns 2..T repeat
    assert two.cached_input_tokens == one.input_tokens
    assert three.cached_input_tokens == two.input_tokens
    assert three.cache_share == pytest.approx(two.input_tokens / three.input_tokens)
    # once a history window drops old turns, only the system prompt is repeated
    windowed = plan_of(tmp_path, turns=3, window=1).endpoints[0]
    assert windowed.input_tokens == three.input_tokens
    assert 0 < windowed.cached_input_tokens < three.cached_input_tokens


def test_the_cost_with_caching_prices_the_share_at_the_cached_rate(tmp_path: Path) -> None:
    e = plan_of(tmp_path).endpoints[0]
    fresh = e.input_tokens - e.cached_input_tokens
    assert e.cost_usd == pytest.approx((e.input_tokens * 0.15 + e.output_tokens * 0.6) / 1e6)
    assert e.cached_cost_usd == pytest.approx(
        (fresh * 0.15 + e.cached_input_tokens * 0.075 + e.output_tokens * 0.6) / 1e6
    )
    assert e.cached_cost_usd < e.cost_usd
    no_discount = plan_of(tmp_path, price_cached_input_per_mtok=None).endpoints[0]
    assert no_discount.cached_cost_usd == pytest.approx(no_discount.cost_usd)


def test_wall_time_is_the_largest_of_its_bounds(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, replicates=3)
    e = plan.endpoints[0]
    assert e.calls == 3 * 2 * 3 and e.critical_path_calls == 2 * 3
    assert e.wall_time_bounds == {
        "critical_path": 6 * ASSUMED_CALL_LATENCY_S,
        "parallelism": 18 * ASSUMED_CALL_LATENCY_S / 2,  # max_connections 2
    }
    assert e.wall_time_limited_by == "parallelism" and plan.wall_time_s == 27.0
    limited = plan_of(tmp_path, requests_per_minute=6, tokens_per_minute=10**9).endpoints[0]
    assert limited.wall_time_limited_by == "requests_per_minute"
    assert limited.wall_time_s == pytest.approx(60 * 18 / 6)
    tokens = limited.input_tokens + limited.output_tokens
    assert limited.wall_time_bounds["tokens_per_minute"] == pytest.approx(60 * tokens / 10**9)
    # the simultaneous order asks a turn's agents at once: the critical path is the turns
    together = plan_of(tmp_path, order="simultaneous", max_connections=64).endpoints[0]
    assert together.critical_path_calls == 3
    assert together.wall_time_bounds["critical_path"] == 3 * ASSUMED_CALL_LATENCY_S
    assert together.wall_time_bounds["parallelism"] == pytest.approx(
        18 * ASSUMED_CALL_LATENCY_S / min(64, 2 * DEFAULT_CONCURRENCY)
    )


def test_budget_warnings_name_the_cost_with_caching(tmp_path: Path) -> None:
    plan = plan_of(tmp_path, usd=0.0001)
    warnings = plan.warnings()
    assert len(warnings) == 2
    assert "the expected cost" in warnings[0] and "with the expected prompt caching" in warnings[0]
    assert "the worst case" in warnings[1]
    assert plan_of(tmp_path, usd=1000).warnings() == []
    no_discount = plan_of(tmp_path, usd=0.0001, price_cached_input_per_mtok=None)
    assert "prompt caching" not in no_discount.warnings()[0]
