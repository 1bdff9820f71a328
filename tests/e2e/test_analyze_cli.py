"""``alignbf analyze`` as typed: attrition then verdicts, JSON, report, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alignbf.config import assets
from tests.conftest import cli

TINY = """
name: study1
agents: {count: 3, target: 3}
conversation: {turns: 4}
factors:
  alignment_ratios: [0.0, 1.0]
  languages: [en, ja]
  models: [llama-3.3-70b]
replicates: 3
endpoints: {llama-3.3-70b: local-llamacpp}
endpoints_file: ENDPOINTS
prereg: study1.yaml
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    config = root / "tiny.yaml"
    config.write_text(TINY.replace("ENDPOINTS", str(assets.path("configs", "endpoints.yaml"))))
    done = cli("run", str(config), "--run-dir", "runs/tiny", "--quiet", cwd=root)
    assert done.returncode == 0, done.stderr
    return root


def test_analyze_prints_attrition_then_verdicts(project: Path) -> None:
    done = cli("analyze", "runs/tiny", cwd=project)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.splitlines()[0].startswith("SYNTHETIC DATA")
    assert out.index("Attrition") < out.index("Verdicts")
    for text in ("planned 12 → run 12 → ok 12 → analysed 12", "s1_en_cpi", "s1_ja_cpi", "p_adj"):
        assert text in out
    assert (project / "runs/tiny/report/report.html").stat().st_mtime > 0
    assert (project / "runs/tiny/analysis/verdicts.csv").exists()


def test_analyze_defaults_to_latest_run_and_json(project: Path) -> None:
    done = cli("analyze", "--json", "--no-report", cwd=project)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert list(data)[:5] == ["study", "run_dir", "backend", "synthetic", "attrition"]
    assert [v["id"] for v in data["verdicts"]][:2] == ["s1_en_cpi", "s1_ja_cpi"]
    assert [Path(f).name for f in data["files"]] == [
        "verdicts.csv",
        "verdicts.json",
        "attrition.csv",
        "sensitivity.csv",
        "components.csv",
        "differential_attrition.csv",
        "cells.csv",
    ]
    assert {v["verdict"] for v in data["verdicts"]} <= {
        "supported",
        "not_supported",
        "inconclusive",
        "descriptive",
    }


def test_errors_are_one_line(tmp_path: Path) -> None:
    done = cli("analyze", cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines == ["alignbf: error: no run directory given and no run found under runs/"]
    bad = cli("analyze", str(tmp_path), "--input", "study1", cwd=tmp_path)
    assert bad.returncode == 2 and "NAME=DIR" in bad.stderr


def test_a_study_without_preregistration_gets_exploratory_contrasts(tmp_path: Path) -> None:
    config = tmp_path / "mystudy.yaml"
    config.write_text(
        "name: mystudy\nagents: {count: 3, target: 3}\nconversation: {turns: 3}\n"
        "factors: {alignment_ratios: [0.0, 1.0], languages: [en, de], models: [llama-3.3-70b]}\n"
        "replicates: 4\nendpoints: {llama-3.3-70b: together-llama-3.3-70b}\n"
        f"endpoints_file: {assets.path('configs', 'endpoints.yaml')}\n"
    )
    run_dir = tmp_path / "run"
    assert cli("run", str(config), "--run-dir", str(run_dir), "--quiet").returncode == 0
    done = cli("analyze", str(run_dir), "--json", "--no-report")
    assert done.returncode == 0, done.stderr
    verdicts = json.loads(done.stdout)["verdicts"]
    ids = {v["id"] for v in verdicts}
    assert {"x_en_cpi", "x_en_di", "x_de_cpi", "x_de_di", "x_cpi_slope", "x_di_slope"} == ids
    assert all(v["exploratory"] and v["verdict"] == "descriptive" for v in verdicts)
    assert (run_dir / "analysis" / "exploratory_prereg.yaml").exists()
    shown = cli("analyze", str(run_dir), "--no-report")
    assert "no preregistration" in shown.stdout and "prereg lock" in shown.stdout
