"""The differential-attrition check on worlds that do and do not plant it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alignbf.config import assets
from tests.conftest import cli


@pytest.mark.parametrize(("world", "flagged"), [("format", True), ("null", False)])
def test_format_failures_that_depend_on_alignment_are_flagged(
    world: str, flagged: bool, tmp_path: Path
) -> None:
    config = tmp_path / "study1.yaml"
    config.write_text(
        "name: study1\nagents: {count: 8, target: 8}\nconversation: {turns: 8}\n"
        "factors: {alignment_ratios: [0.0, 1.0], languages: [en], models: [llama-3.3-70b]}\n"
        "replicates: 40\nendpoints: {llama-3.3-70b: together-llama-3.3-70b}\n"
        f"endpoints_file: {assets.path('configs', 'endpoints.yaml')}\n"
        f"prereg: {assets.path('prereg', 'study1.yaml')}\n"
    )
    run_dir = tmp_path / "run"
    ran = cli("run", str(config), "--world", world, "--run-dir", str(run_dir), "--quiet")
    assert ran.returncode == 0, ran.stderr
    done = cli("analyze", str(run_dir), "--json", "--no-report")
    assert done.returncode == 0, done.stderr
    english = next(v for v in json.loads(done.stdout)["verdicts"] if v["id"] == "s1_en_cpi")
    assert english["attrition_flag"] is flagged
    assert ("differential attrition" in english["note"]) is flagged
    table = (run_dir / "analysis" / "differential_attrition.csv").read_text()
    assert table.splitlines()[1].endswith("True" if flagged else "False")
