"""An endpoint error inside a turn is a simulation outcome in either turn order."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from alignbf.engine.runner import run_study
from alignbf.errors import ContextLengthError, TransientEndpointError

CONFIG = """
name: orders
agents: {count: 3, target: 3}
conversation: {turns: 3, turn_order: ORDER}
factors:
  alignment_ratios: [0.0, 1.0]
  languages: [en]
  models: [llama-3.3-70b]
replicates: 2
"""


class FailsOnce:
    """The synthetic backend, except that agent 1 of one simulation fails at turn 2."""

    def __init__(self, error: Exception) -> None:
        from alignbf.engine.synthetic import SyntheticBackend, load_world

        self.inner = SyntheticBackend(load_world(None))
        self.error = error
        self.victim: str | None = None

    def endpoint_id(self, model: str) -> str:
        return self.inner.endpoint_id(model)

    async def complete(self, request: Any) -> Any:
        self.victim = self.victim or request.sim_id
        if (request.sim_id, request.agent, request.turn) == (self.victim, 1, 2):
            raise self.error
        return await self.inner.complete(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("order", ["sequential", "simultaneous"])
@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ContextLengthError("endpoint e: context length exceeded"), "context_length"),
        (TransientEndpointError("endpoint e: gave up after 5 attempt(s)"), "infra_error"),
    ],
)
def test_an_error_in_a_turn_ends_that_simulation_only(
    order: str, error: Exception, status: str, tmp_path: Path
) -> None:
    config = tmp_path / "orders.yaml"
    config.write_text(CONFIG.replace("ORDER", order))
    backend = FailsOnce(error)
    run_dir = tmp_path / "r"
    result = run_study(
        config, backend=backend, backend_name="synthetic:paper", run_dir=run_dir, concurrency=1
    )
    assert result.progress.done == 4
    with sqlite3.connect(run_dir / "run.sqlite") as conn:
        statuses = dict(conn.execute("SELECT sim_id, status FROM simulations"))
        error_text = conn.execute(
            "SELECT error FROM simulations WHERE sim_id = ?", (backend.victim,)
        ).fetchone()[0]
    assert statuses.pop(backend.victim) == status
    assert set(statuses.values()) == {"ok"}
    assert error_text == str(error)
