"""``alignbf plan`` as printed: the tables fit 80 columns, a large grid is shown by factor."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from alignbf.cli import render
from alignbf.config.study import load_study
from alignbf.engine.plan import make_plan

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def printed(config: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    out = io.StringIO()
    monkeypatch.setattr(render, "console", Console(file=out, width=80, color_system=None))
    render.render_plan(make_plan(load_study(config), config))
    return out.getvalue().splitlines()


def test_a_large_grid_is_one_row_per_factor_and_every_line_fits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = printed(CONFIGS / "study2.yaml", monkeypatch)
    assert max(len(line) for line in lines) <= 80
    text = "\n".join(lines)
    assert "80 cells, 15 simulations each" in text
    languages = next(line for line in lines if line.startswith("│ language"))
    assert languages.split("│")[2].strip() == "16" and " ko " in languages
    # The endpoint's name stays on one line, over its model, and the wall-time bounds follow.
    assert "│ together-llama-3.3-70b │" in text and "limited by requests per minute" in text


def test_a_small_grid_is_shown_cell_by_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = printed(CONFIGS / "smoke.yaml", monkeypatch)
    assert max(len(line) for line in lines) <= 80
    cells = [line for line in lines if line.startswith(("│ en ", "│ ja "))]
    assert len(cells) == 4 and "smoke: 8 simulations, 72 LLM calls" in "\n".join(lines)
