"""Human coding on a synthetic run: the sample, the oracle as coder, bad coded files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from alignbf.analysis.agreement import cohen_kappa
from alignbf.analysis.validity import oracle_codes
from alignbf.config import assets
from alignbf.scoring.coding import SAMPLE_COLUMNS
from alignbf.scoring.lexicon import CATEGORIES
from tests.conftest import cli


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("coding")
    config = root / "study1.yaml"
    config.write_text(
        "name: study1\nagents: {count: 4, target: 4}\nconversation: {turns: 5}\n"
        "factors: {alignment_ratios: [0.0, 1.0], languages: [en, ja], models: [llama-3.3-70b]}\n"
        "replicates: 12\nendpoints: {llama-3.3-70b: together-llama-3.3-70b}\n"
        f"endpoints_file: {assets.path('configs', 'endpoints.yaml')}\n"
        f"prereg: {assets.path('prereg', 'study1.yaml')}\n"
    )
    run = root / "run"
    assert cli("run", str(config), "--run-dir", str(run), "--quiet").returncode == 0
    done = cli("code", "sample", str(run), "--per-language", "400", "--seed", "3")
    assert done.returncode == 0, done.stderr
    return run


def test_the_sample_hides_condition_and_verdict(run_dir: Path) -> None:
    sample = pd.read_csv(run_dir / "code" / "sample.csv", keep_default_na=False)
    assert list(sample.columns) == SAMPLE_COLUMNS
    assert sample.groupby("language").size().to_dict() == {"en": 400, "ja": 400}
    assert (sample[list(CATEGORIES)] == "").all().all()
    manifest = json.loads((run_dir / "code" / "manifest.json").read_text())
    assert manifest["seed"] == 3 and set(manifest["codebooks"]) == {"en", "ja"}
    assert all(manifest["codebooks"].values()), "a codebook per language, hashed"
    outcomes = {key.split()[2] for key in manifest["strata"]}
    assert len(outcomes) >= 4 and "none" in outcomes
    key = pd.read_csv(run_dir / "code" / "key.csv")
    assert {"alignment_ratio", "aligned", "lex_coercive"} <= set(key.columns)
    again = run_dir.parent / "again"
    again.mkdir()
    (again / "run.sqlite").symlink_to(run_dir / "run.sqlite")
    assert cli("code", "sample", str(again), "--per-language", "400", "--seed", "3").returncode == 0
    assert (again / "code" / "sample.csv").read_text() == (
        run_dir / "code" / "sample.csv"
    ).read_text()


def _expected_kappa(prevalence: float, error: float) -> float:
    q = prevalence * (1 - error) + (1 - prevalence) * error
    observed = (1 - error) ** 2 + error**2
    chance = q**2 + (1 - q) ** 2
    return (observed - chance) / (1 - chance)


def test_coder_kappa_recovers_the_planted_error_rate(run_dir: Path) -> None:
    truth = oracle_codes(run_dir)
    key = pd.read_csv(run_dir / "code" / "key.csv")
    rng = np.random.default_rng(0)
    for language in ("en", "ja"):
        mine = truth[(key["language"] == language).to_numpy()]
        for category in CATEGORIES:
            codes = mine[category].to_numpy()
            kappas = []
            for _ in range(40):
                a, b = (np.where(rng.random(len(codes)) < 0.1, 1 - codes, codes) for _ in "ab")
                kappas.append(cohen_kappa(a, b))
            expected = _expected_kappa(float(codes.mean()), 0.1)
            assert abs(float(np.mean(kappas)) - expected) < 0.05, (language, category)


def test_code_agree_end_to_end(run_dir: Path) -> None:
    made = cli("code", "simulate", str(run_dir), "--coders", "2", "--error-rate", "0.1")
    assert made.returncode == 0, made.stderr
    files = [str(run_dir / "code" / f"simulated_coder_{k}.csv") for k in (1, 2)]
    done = cli("code", "agree", str(run_dir), *files)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(run_dir / "analysis" / "validity.csv")
    assert len(table) == 8 and table["coder_kappa"].between(0.0, 0.95).all()
    assert (table["kappa_low"] <= table["kappa"]).all() and (
        table["kappa"] <= table["kappa_high"]
    ).all()
    # The lexicon is validated where its hits count: the sample's monologue utterances
    # (drawn so coders see every channel) are left out of its rows.
    key = pd.read_csv(run_dir / "code" / "key.csv")
    assert set(key["channel"]) > {"talk", "whisper"}
    counted = key[key["channel"].isin(["talk", "whisper"])].groupby("language").size()
    rows = table[table["instrument"] == "lexicon"].groupby("language")["n"].first()
    assert rows.to_dict() == counted.to_dict()


def _broken(run_dir: Path, name: str, edit) -> Path:  # type: ignore[no-untyped-def]
    source = run_dir / "code" / "simulated_coder_1.csv"
    rows = list(csv.DictReader(source.open(encoding="utf-8")))
    fields = list(rows[0])
    rows, fields = edit(rows, fields)
    path = run_dir / f"{name}.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.parametrize(
    ("name", "edit", "needle"),
    [
        ("unknown_id", lambda r, f: ([{**r[0], "id": "u99999"}, *r[1:]], f), "row 2: id 'u99999'"),
        (
            "bad_code",
            lambda r, f: ([{**r[0], "coercive": "yes"}, *r[1:]], f),
            "row 2: coercive is 'yes'",
        ),
        (
            "missing_column",
            lambda r, f: (
                [{k: v for k, v in x.items() if k != "protective"} for x in r],
                [c for c in f if c != "protective"],
            ),
            "missing column 'protective'",
        ),
        (
            "extra_category",
            lambda r, f: ([{**x, "harmony": "0"} for x in r], [*f, "harmony"]),
            "'harmony' is not a codebook category",
        ),
        (
            "two_coders",
            lambda r, f: ([r[0], {**r[1], "coder": "other"}, *r[2:]], f),
            "row 3: a second coder",
        ),
    ],
)
def test_a_bad_coded_file_is_one_line(run_dir: Path, name: str, edit, needle: str) -> None:  # type: ignore[no-untyped-def]
    if not (run_dir / "code" / "simulated_coder_1.csv").exists():
        cli("code", "simulate", str(run_dir))
    path = _broken(run_dir, name, edit)
    done = cli("code", "agree", str(run_dir), str(path))
    assert done.returncode == 1
    line = done.stderr.strip()
    assert "\n" not in line and str(path) in line and needle in line, line


def test_the_validity_gate_holds_back_verdicts(run_dir: Path, tmp_path: Path) -> None:
    prereg = yaml.safe_load(assets.path("prereg", "study1.yaml").read_text(encoding="utf-8"))
    prereg["validity"] = {"kappa": 0.99, "min_coded": 100}
    gated = tmp_path / "study1.yaml"
    gated.write_text(yaml.safe_dump(prereg, allow_unicode=True), encoding="utf-8")
    from alignbf.analysis.gate import unmet
    from alignbf.config.hypotheses import ValidityGate

    table = pd.read_csv(run_dir / "analysis" / "validity.csv")
    failing = unmet(ValidityGate(kappa=0.99), table, ["en", "ja"])
    assert set(failing) == {"en", "ja"} and "kappa" in failing["en"]
    assert unmet(ValidityGate(kappa=-1.0), table, ["en", "ja"]) == {}
    assert "fewer than 1000" in unmet(ValidityGate(kappa=-1.0, min_coded=1000), table, ["en"])["en"]
    assert "no human codes" in unmet(ValidityGate(), None, ["en"])["en"]
    from alignbf.analysis.gate import apply_gate
    from alignbf.config.hypotheses import load_prereg
    from alignbf.config.study import load_study

    loaded = load_prereg(gated)
    rows = [{"verdict": "supported", "note": ""} for _ in loaded.hypotheses]
    apply_gate(loaded, rows, run_dir, load_study("study1"))
    for h, row in zip(loaded.hypotheses, rows, strict=True):
        held = row["verdict"] == "measure_not_validated"
        assert held == (not h.exploratory), h.id
        assert not held or "kappa" in row["note"]
