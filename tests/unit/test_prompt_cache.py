"""Prompt caching offline: usage parsing, pricing, the cache-key flag, the emulated cache."""

from __future__ import annotations

import json

import pytest

from alignbf.config.endpoints import Endpoint
from alignbf.testing.prefixcache import BLOCK_TOKENS, PrefixCache, prompt_text
from alignbf.transport.backend import ChatRequest
from alignbf.transport.client import prompt_cache_key
from alignbf.transport.responses import parse_completion


def _body(usage: dict[str, object]) -> bytes:
    choice = {"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    return json.dumps({"choices": [choice], "usage": usage}).encode()


@pytest.mark.parametrize(
    ("usage", "cached", "written"),
    [
        ({"prompt_tokens": 900, "prompt_tokens_details": {"cached_tokens": 768}}, 768, None),
        (
            {
                "prompt_tokens": 900,
                "cache_read_input_tokens": 512,
                "cache_creation_input_tokens": 3,
            },
            512,
            3,
        ),
        ({"prompt_tokens": 900, "prompt_cache_hit_tokens": 640}, 640, None),
        ({"prompt_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 50}}, 100, 50),
        ({"prompt_tokens": 900, "prompt_tokens_details": {"cached_tokens": 0}}, 0, None),
        ({"prompt_tokens": 900}, None, None),
        ({"prompt_tokens": 900, "prompt_tokens_details": None}, None, None),
        ({"prompt_tokens": 900, "prompt_tokens_details": {"cached_tokens": -1}}, None, None),
    ],
)
def test_cached_and_written_tokens_are_read_from_usage(
    usage: dict[str, object], cached: int | None, written: int | None
) -> None:
    completion = parse_completion(_body({"prompt_tokens": 900, **usage}))
    assert completion.prompt_tokens == 900
    assert completion.cached_tokens == cached
    assert completion.cache_write_tokens == written


def _endpoint(**fields: object) -> Endpoint:
    base = {"base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini", "serves": "m"}
    return Endpoint.model_validate(base | fields)


def test_cached_tokens_are_priced_at_the_cached_rate() -> None:
    mini = _endpoint(
        price_input_per_mtok=0.15, price_cached_input_per_mtok=0.075, price_output_per_mtok=0.6
    )
    # 1M prompt tokens of which 800k cached, 100k output: 0.2*0.15 + 0.8*0.075 + 0.1*0.6
    assert mini.cost(1_000_000, 100_000, 800_000) == pytest.approx(0.03 + 0.06 + 0.06)
    assert mini.cost(1_000_000, 100_000) == pytest.approx(0.15 + 0.06)
    assert mini.cost(1_000_000, 100_000, None) == mini.cost(1_000_000, 100_000, 0)
    # a report of more cached tokens than prompt tokens cannot make a call cheaper than free input
    assert mini.cost(1000, 0, 5000) == pytest.approx(1000 * 0.075 / 1e6)


def test_without_a_cached_price_a_cache_hit_costs_the_input_price() -> None:
    plain = _endpoint(price_input_per_mtok=0.5, price_output_per_mtok=1.5)
    assert plain.cost(2_000, 100, 1_500) == plain.cost(2_000, 100)
    writes = _endpoint(
        price_input_per_mtok=1.0, price_cache_write_per_mtok=1.25, price_output_per_mtok=0.0
    )
    assert writes.cost(1_000_000, 0, 0, 400_000) == pytest.approx(0.6 + 0.5)
    assert _endpoint(price_output_per_mtok=1.0).cost(10, 10, 5) is None


@pytest.mark.parametrize(
    ("base_url", "flag", "sends"),
    [
        ("https://api.openai.com/v1", None, True),
        ("https://api.together.xyz/v1", None, False),
        ("http://127.0.0.1:8000/v1", None, False),
        ("https://api.openai.com.example.net/v1", None, False),
        ("https://api.openai.com/v1", False, False),
        ("http://127.0.0.1:8000/v1", True, True),
    ],
)
def test_prompt_cache_key_defaults_to_openai_only(
    base_url: str, flag: bool | None, sends: bool
) -> None:
    assert _endpoint(base_url=base_url, prompt_cache_key=flag).sends_prompt_cache_key is sends


def test_prompt_cache_key_is_one_per_simulation_and_agent() -> None:
    def request(sim: str, agent: int, turn: int) -> ChatRequest:
        messages = ({"role": "user", "content": f"turn {turn}"},)
        return ChatRequest(sim, agent, turn, "m", messages, 0.9, 1.0, 64, turn)

    key = prompt_cache_key(request("sim-a", 2, 1))
    assert key == prompt_cache_key(request("sim-a", 2, 9))
    others = {prompt_cache_key(request(s, a, 1)) for s, a in (("sim-a", 1), ("sim-b", 2))}
    assert key not in others and len(others) == 2
    assert key.startswith("alignbf-") and len(key) <= 64


def _messages(*contents: str) -> list[dict[str, str]]:
    return [{"role": "user" if i % 2 else "system", "content": c} for i, c in enumerate(contents)]


BLOCK_CHARS = BLOCK_TOKENS * 4


def test_a_prompt_that_extends_the_previous_one_hits_its_whole_blocks() -> None:
    cache = PrefixCache(100_000)
    first = _messages("s" * 1000, "u" * 500)
    assert cache.lookup_and_store(first) == 0
    assert cache.lookup_and_store(first) == len(prompt_text(first)) // BLOCK_CHARS * BLOCK_TOKENS
    longer = [*first, {"role": "assistant", "content": "a" * 700}]
    assert cache.lookup_and_store(longer) == len(prompt_text(first)) // BLOCK_CHARS * BLOCK_TOKENS
    # a change early in the prompt leaves only the blocks before it cached
    edited = _messages("s" * 300 + "X" + "s" * 699, "u" * 500)
    assert cache.lookup_and_store(edited) == 300 // BLOCK_CHARS * BLOCK_TOKENS


def test_the_cache_is_bounded_and_evicts_the_least_recently_used() -> None:
    cache = PrefixCache(capacity_tokens=10 * BLOCK_TOKENS)
    a, b = _messages("a" * 6 * BLOCK_CHARS), _messages("b" * 6 * BLOCK_CHARS)
    cache.lookup_and_store(a)
    cache.lookup_and_store(b)
    assert len(cache) == 10 and cache.evicted == 2
    assert cache.lookup_and_store(a) == 0  # a's first blocks went first, so no prefix is left
    # storing a again evicted b's oldest blocks: a is whole, b has lost its prefix
    assert cache.lookup_and_store(a) == 6 * BLOCK_TOKENS
    assert cache.lookup_and_store(b) == 0


def test_the_same_request_order_gives_the_same_hits_and_zero_capacity_is_off() -> None:
    prompts = [_messages("x" * n, "y" * (n // 3)) for n in (900, 1200, 300, 2500, 1200, 900)]
    runs = []
    for _ in range(2):
        cache = PrefixCache(8 * BLOCK_TOKENS)
        runs.append([cache.lookup_and_store(p) for p in prompts])
    assert runs[0] == runs[1] and any(runs[0])
    off = PrefixCache(0)
    assert not off.enabled and [off.lookup_and_store(p) for p in prompts] == [0] * len(prompts)
    with pytest.raises(ValueError):
        PrefixCache(-1)
