"""The parts of ``alignbf run --batch`` below the HTTP run: config, plan, request ids,
the loopback server's multipart reader and the store's batch-job records."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from alignbf.config.endpoints import load_endpoints
from alignbf.errors import ConfigError
from alignbf.store import batches
from alignbf.store.store import Store
from alignbf.testing.batchapi import parse_jobs, parse_multipart
from alignbf.transport.backend import ChatRequest
from alignbf.transport.batch import custom_id
from tests.unit.test_plan_cache_time import plan_of


def test_plan_counts_rounds_by_turn_order_and_prices_the_discount(tmp_path: Path) -> None:
    sequential = plan_of(tmp_path, turns=3, batch=True).endpoints[0]
    assert sequential.batch_rounds == 2 * 3  # agents x turns: one speaker per job
    assert sequential.cost_usd is not None
    assert sequential.batch_cost_usd == pytest.approx(sequential.cost_usd * 0.5)
    simultaneous = plan_of(tmp_path, turns=3, order="simultaneous", batch=True).endpoints[0]
    assert simultaneous.batch_rounds == 3  # turns: every agent of a turn in one job
    quarter = plan_of(tmp_path, batch=True, batch_discount=0.25).endpoints[0]
    assert quarter.cost_usd is not None
    assert quarter.batch_cost_usd == pytest.approx(quarter.cost_usd * 0.75)
    interactive = plan_of(tmp_path).endpoints[0]
    assert interactive.batch_rounds is None and interactive.batch_cost_usd is None


def test_a_discount_outside_0_to_1_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.yaml"
    path.write_text(
        "endpoints:\n  e:\n    base_url: http://127.0.0.1:1/v1\n    model: m\n    serves: m\n"
        "    batch: true\n    batch_discount: 1.5\n"
    )
    with pytest.raises(ConfigError, match=r"endpoints\.e\.batch_discount") as caught:
        load_endpoints(path)
    assert "\n" not in str(caught.value)


def _request(turn: int) -> ChatRequest:
    messages = ({"role": "user", "content": "hello"},)
    return ChatRequest("sim-a", 1, turn, "m", messages, 0.9, 1.0, 64, 7)


def test_custom_ids_are_stable_and_carry_the_sample_identity() -> None:
    payload = b'{"model": "m"}'
    assert custom_id(_request(1), payload) == custom_id(_request(1), payload)
    assert custom_id(_request(1), payload) != custom_id(_request(2), payload)
    assert custom_id(_request(1), payload) != custom_id(_request(1), payload + b" ")


def test_the_loopback_server_reads_the_multipart_body_httpx_sends() -> None:
    data = b'{"custom_id": "a"}\n{"custom_id": "b"}\n'
    request = httpx.Request(
        "POST",
        "http://127.0.0.1/v1/files",
        data={"purpose": "batch"},
        files={"file": ("batch.jsonl", data, "application/jsonl")},
    )
    body = request.read()
    fields = parse_multipart(request.headers["content-type"], body)
    assert fields == {"purpose": b"batch", "file": data}
    assert parse_jobs("--batch-expire", "2, 5") == (2, 5)
    with pytest.raises(ConfigError, match="--batch-expire"):
        parse_jobs("--batch-expire", "0")


def test_jobs_are_recorded_before_use_and_stay_open_until_their_outcome(tmp_path: Path) -> None:
    with Store(tmp_path / "run") as store:
        items = [("id-1", "sim", 0, 1), ("id-2", "sim", 1, 1)]
        job = batches.record_upload(store, "ep", "file-1", items)
        (opened,) = batches.open_jobs(store, "ep")
        assert (opened.status, opened.batch_id, opened.custom_ids) == (
            "uploaded",
            None,
            ("id-1", "id-2"),
        )
        assert batches.open_jobs(store, "other") == []
        batches.record_submitted(store, job, "batch_1")
        assert batches.open_jobs(store, "ep")[0].batch_id == "batch_1"
        batches.record_outcome(store, job, "expired", {"id-1": '{"choices": []}'}, "expired")
        assert batches.open_jobs(store, "ep") == []
        assert batches.stored_results(store, ["id-1", "id-2"]) == {"id-1": '{"choices": []}'}
        assert batches.job_counts(store) == {"expired": 1}
    with Store(tmp_path / "run") as store:  # durable across processes
        assert batches.stored_results(store, ["id-1"]) == {"id-1": '{"choices": []}'}
