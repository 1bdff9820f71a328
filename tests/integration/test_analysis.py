"""analyze_run on small synthetic runs: planted effects found, null world within chance.

Every run here is reduced (4 agents, 6 turns, 4-30 replicates) so the module stays fast.
Synthetic runs are seeded, so the verdicts below are deterministic.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from alignbf.analysis.analyze import analyze_run, check_outcomes, parse_inputs
from alignbf.analysis.verdicts import MAIN, Source
from alignbf.api import run_command
from alignbf.config import assets
from alignbf.config.hypotheses import load_prereg
from alignbf.errors import AnalysisError, ConfigError
from alignbf.report.report import write_report
from alignbf.scoring.scores import load_scores

ENDPOINTS = {
    "llama-3.3-70b": "together-llama-3.3-70b",
    "gpt-4o-mini": "openai-gpt-4o-mini",
    "qwen3-next-80b-a3b": "together-qwen3-next-80b",
}
DESIGNS = {
    "study1": dict(languages=["en", "ja"], ratios=[0.0, 1.0], models=["llama-3.3-70b"], reps=30),
    "study2": dict(
        languages=["en", "ja", "ko", "de"], ratios=[0.0, 0.5, 1.0], models=["llama-3.3-70b"], reps=4
    ),
    "study3": dict(
        languages=["en", "ja"],
        ratios=[0.0, 1.0],
        models=["llama-3.3-70b"],
        reps=4,
        individuation=[0.0, 0.5, 1.0],
    ),
    "study4": dict(
        languages=["en", "ja"],
        ratios=[0.0, 1.0],
        models=["gpt-4o-mini", "qwen3-next-80b-a3b"],
        reps=6,
    ),
}


def write_config(directory: Path, study: str) -> Path:
    """A reduced config of a built-in study (same name, so its prereg and inputs apply)."""
    d = DESIGNS[study]
    endpoints = ", ".join(f"{m}: {ENDPOINTS[m]}" for m in d["models"])
    text = f"""
name: {study}
agents: {{count: 4, target: 4}}
conversation: {{turns: 6}}
factors:
  alignment_ratios: {d["ratios"]}
  languages: [{", ".join(d["languages"])}]
  individuation_ratios: {d.get("individuation", [0.0])}
  models: [{", ".join(d["models"])}]
replicates: {d["reps"]}
scoring: {{zscore_scope: {"model" if study == "study4" else "pooled"}}}
endpoints: {{{endpoints}}}
endpoints_file: {assets.path("configs", "endpoints.yaml")}
prereg: {study}.yaml
"""
    path = directory / f"{study}-reduced.yaml"
    path.write_text(text)
    return path


def make_run(root: Path, study: str, world: str) -> Path:
    run_dir = root / f"{study}-{world}"
    result = run_command(write_config(root, study), world=world, run_dir=run_dir)
    assert result.complete
    return run_dir


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("paper")
    for study in ("study1", "study4"):
        make_run(root, study, "paper")
    return root


@pytest.fixture(scope="module")
def null(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("null")
    for study in DESIGNS:
        make_run(root, study, "null")
    return root


def _verdicts(run_dir: Path, **kwargs: object) -> pd.DataFrame:
    return analyze_run(run_dir, **kwargs).verdicts.set_index("id")  # type: ignore[arg-type]


def test_paper_world_points_the_planted_directions(paper: Path) -> None:
    """The paper world's English effect is small at this size (g about -0.4 to -1 over
    recent lexicon versions), so only its sign is asserted; the backfire is larger."""
    v = _verdicts(paper / "study1-paper")
    assert v.loc["s1_en_cpi", "estimate"] < 0 and v.loc["s1_ja_cpi", "estimate"] > 0
    assert v.loc["s1_en_cpi", "verdict"] in ("supported", "inconclusive")
    assert v.loc["s1_ja_cpi", "verdict"] == "supported"
    assert v.loc["s1_ja_conformity_ratio", "verdict"] == "descriptive"
    assert v.loc["s1_en_cpi", "p_adj"] >= v.loc["s1_en_cpi", "p_val"]


def test_analysis_writes_verdicts_attrition_and_synthetic_report(paper: Path) -> None:
    run_dir = paper / "study1-paper"
    analysis = analyze_run(run_dir)
    paths = write_report(run_dir, analysis)
    out = run_dir / "analysis"
    saved = pd.read_csv(out / "verdicts.csv")
    assert list(saved["id"]) == list(analysis.verdicts["id"])
    payload = json.loads((out / "verdicts.json").read_text())
    assert payload["backend"] == "synthetic:paper" and len(payload["verdicts"]) == 5
    attrition = pd.read_csv(out / "attrition.csv")
    assert attrition["planned"].sum() == 120 and attrition["analysed"].sum() == 120
    md, html = (run_dir / "report" / name for name in ("report.md", "report.html"))
    assert md in paths and html in paths
    assert "SYNTHETIC DATA" in md.read_text().splitlines()[0]
    assert "SYNTHETIC DATA" in html.read_text().splitlines()[0]
    page = html.read_text()
    assert page.count("data:image/png;base64,") == 2 and 'src="http' not in page
    assert "## Deviations" in md.read_text()
    # Per-cell descriptives: n, mean and SD of the indices and their raw components.
    cells = pd.read_csv(out / "cells.csv")
    assert len(cells) == len(attrition) and cells["n"].sum() == 120
    sims = analysis.scores.simulations
    en0 = sims[(sims["language"] == "en") & (sims["alignment_ratio"] == 0.0)]
    row = cells[(cells["language"] == "en") & (cells["alignment_ratio"] == 0.0)].iloc[0]
    assert row["cpi_mean"] == pytest.approx(en0["cpi"].mean())
    assert row["protective_rate_sd"] == pytest.approx(en0["protective_rate"].std(ddof=1))
    assert "## Descriptives per cell" in md.read_text()
    # The paper's g values are drawn on the forest plot, and every verdict says why.
    assert "open diamonds: the original study's estimates" in md.read_text()
    assert analysis.verdicts["reason"].str.len().gt(0).all()


def test_study4_takes_llama_cells_from_sibling_study1(paper: Path) -> None:
    analysis = analyze_run(paper / "study4-paper")
    assert analysis.inputs["study1"] == (paper / "study1-paper").resolve()
    v = analysis.verdicts.set_index("id")
    assert v.loc["s4_en_llama", "estimate"] < 0 and v.loc["s4_ja_llama", "estimate"] > 0
    assert "cells from input study1" in v.loc["s4_ja_llama", "note"]
    for key in ("s4_en_gpt", "s4_en_qwen", "s4_ja_gpt", "s4_ja_qwen"):
        assert math.isfinite(v.loc[key, "estimate"]) and v.loc[key, "n"] == 12
    assert set(analysis.attrition["source"]) == {"main", "study1"}
    # The model x alignment test in Japanese pools this run's GPT and Qwen cells with the
    # Llama cells of Study 1 on one reference; on the paper world the backfire is Llama's.
    combined = v.loc["s4_ja_llama_specific"]
    llama = v.loc["s4_ja_llama", "n"]
    assert combined["n"] == llama + 2 * 12 and "recomputed on the union" in combined["note"]
    assert combined["estimate"] < 0 and math.isfinite(combined["ci_low"])
    assert set(analysis.inputs) == {"study1"}


def test_study4_without_study1_is_inconclusive_not_an_error(paper: Path, tmp_path: Path) -> None:
    alone = tmp_path / "alone"
    alone.mkdir()
    run_dir = make_run(alone, "study4", "paper")
    v = _verdicts(run_dir)
    for key in ("s4_en_llama", "s4_ja_llama", "s4_ja_llama_specific"):
        assert v.loc[key, "verdict"] == "inconclusive"
        assert "input 'study1' not found" in v.loc[key, "note"]
    assert math.isfinite(v.loc["s4_en_gpt", "estimate"])
    given = _verdicts(run_dir, inputs={"study1": paper / "study1-paper"})
    assert given.loc["s4_ja_llama", "estimate"] > 0


def test_an_outcome_that_is_no_score_column_is_refused_in_one_line(paper: Path) -> None:
    prereg = load_prereg(assets.path("prereg", "study1.yaml"))
    typo = prereg.hypotheses[0].model_copy(update={"outcome": "cpii"})
    bad = prereg.model_copy(update={"hypotheses": [typo, *prereg.hypotheses[1:]]})
    run_dir = paper / "study1-paper"
    sources = {MAIN: Source(run_dir, load_scores(run_dir))}
    check_outcomes(prereg, Path("study1.yaml"), sources)  # the shipped file passes
    expected = r"hypotheses\[0\] \(s1_en_cpi\)\.outcome 'cpii' is not a simulation score column"
    with pytest.raises(ConfigError, match=expected + r"; did you mean 'cpi'\?"):
        check_outcomes(bad, Path("study1.yaml"), sources)


def test_unknown_input_name_is_one_line(paper: Path) -> None:
    with pytest.raises(AnalysisError, match="the preregistration declares inputs: none"):
        analyze_run(paper / "study1-paper", inputs={"study9": paper})


def test_parse_inputs() -> None:
    assert parse_inputs(["study1=runs/a", " x = b "]) == {"study1": Path("runs/a"), "x": Path("b")}
    with pytest.raises(ValueError, match="expected NAME=DIR"):
        parse_inputs(["study1"])


def test_null_world_supports_no_more_than_chance(null: Path) -> None:
    """Under no effect, each directional confirmatory hypothesis of an effect is
    'supported' with probability at most .025 (two-sided test, one direction: 10 g
    contrasts, mixed terms and the Study 1 interaction slope) or .05 (the Study 2
    interaction F test and the Study 4 model x alignment F test; the two language counts,
    which with 4 languages reach p < .05 with probability under .004). s3_conformity is a
    claim about a level (conformity > 50% of conformity and individuation phrasing), which
    the null world's base rates (about 69%) satisfy, so it is left out. Expected supported
    count: at most 10 x .025 + 2 x .05 + .004 = .35. The bound asserted is 2: P(3 or more)
    is at most .35^3 / 6 < .01 for independent tests, and the Llama cells of Study 4 re-use
    the Study 1 run, so s4_*_llama can duplicate one false support of s1 (P <= .025)."""
    frames = []
    for study in DESIGNS:
        inputs = {"study1": null / "study1-null"} if study == "study4" else None
        frames.append(analyze_run(null / f"{study}-null", inputs).verdicts)
    v = pd.concat(frames, ignore_index=True)
    directional = v[~v["exploratory"] & v["expected"].isin(["positive", "negative"])]
    directional = directional[directional["id"] != "s3_conformity"]
    assert len(directional) == 14
    supported = directional[directional["verdict"] == "supported"]
    assert len(supported) <= 2, supported[["id", "estimate", "p_adj"]]
