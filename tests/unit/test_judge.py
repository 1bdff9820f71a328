"""The judge's pieces on their own: config, rubric, reply parsing, the synthetic judge."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from alignbf.analysis.agreement import cohen_kappa
from alignbf.analysis.judge_agreement import agreement_table, binary_kappas, expected_kappa
from alignbf.config.rubric import (
    JUDGE_CATEGORIES,
    load_rubric,
    parse_labels,
    read_judge_request,
)
from alignbf.config.study import load_languages, parse_study
from alignbf.engine.synthetic import SyntheticModel, load_world, oracle_labels
from alignbf.errors import ConfigError
from alignbf.scoring.judge import judge_request
from alignbf.scoring.lexicon import CATEGORIES
from alignbf.transport.backend import ChatRequest

BASE = {
    "name": "t",
    "factors": {"alignment_ratios": [0.0], "languages": ["en"], "models": ["m"]},
    "replicates": 1,
}


def test_judge_categories_are_the_lexicon_categories() -> None:
    assert JUDGE_CATEGORIES == CATEGORIES


def test_instrument_judge_needs_a_judge_block() -> None:
    with pytest.raises(ConfigError, match=r"scoring: instrument 'judge' needs a judge block"):
        parse_study({**BASE, "scoring": {"instrument": "judge"}}, "s.yaml")
    with pytest.raises(ConfigError, match=r"scoring\.instrument"):
        parse_study({**BASE, "scoring": {"instrument": "jugde"}}, "s.yaml")
    with pytest.raises(ConfigError, match=r"scoring\.judge\.tempature: unknown field"):
        parse_study(
            {**BASE, "scoring": {"instrument": "both", "judge": {"model": "j", "tempature": 0}}},
            "s.yaml",
        )


def test_the_judge_model_must_be_mapped_when_the_study_maps_models() -> None:
    data = {**BASE, "scoring": {"instrument": "both", "judge": {"model": "j"}}}
    with pytest.raises(ConfigError, match=r"scoring\.judge\.model 'j' is not mapped"):
        parse_study({**data, "endpoints": {"m": "e"}}, "s.yaml")
    study = parse_study({**data, "endpoints": {"m": "e", "j": "e2"}}, "s.yaml")
    assert study.scoring.judge is not None and study.scoring.judge.temperature == 0.0


def test_every_language_has_a_rubric_with_its_codebook_definitions() -> None:
    digests = set()
    for language in load_languages():
        rubric = load_rubric(language)
        assert rubric.system.startswith(f"alignbf judge rubric v1 (language: {language})")
        for category in JUDGE_CATEGORIES:
            assert f"- {category}: The speaker" in rubric.system
        digests.add(rubric.digest)
    assert len(digests) == len(load_languages())


def test_a_judge_request_carries_the_utterance_and_is_recognised() -> None:
    rubric = load_rubric("ja")
    judge = parse_study(
        {**BASE, "scoring": {"instrument": "judge", "judge": {"model": "j"}}}, "s"
    ).scoring.judge
    assert judge is not None
    utterance = ("sim", 3, 1, "whisper", "ja", "規則は守ります。{brace}\n二行目")
    request, digest = judge_request(rubric, judge, utterance, 0)
    assert read_judge_request(request.messages) == ("ja", "規則は守ります。{brace}\n二行目")
    again, digest_again = judge_request(rubric, judge, utterance, 1)
    assert again.seed != request.seed and digest_again != digest
    other, _ = judge_request(rubric, judge, ("sim", 3, 2, "whisper", "ja", utterance[5]), 0)
    assert other.seed != request.seed  # same words, another sample
    assert read_judge_request(({"role": "system", "content": "You are Anna."},) * 2) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"coercive": 1, "protective": 0, "conformity": 0, "individuation": 1}', [1, 0, 0, 1]),
        (
            '```json\n{"coercive":0,"protective":1,"conformity":1,"individuation":0}\n```',
            [0, 1, 1, 0],
        ),
        ('{"coercive": 1, "protective": 0, "conformity": 0}', None),
        ('{"coercive": 2, "protective": 0, "conformity": 0, "individuation": 0}', None),
        ('{"coercive": true, "protective": 0, "conformity": 0, "individuation": 0}', None),
        ('{"coercive": 1, "protective": 0, "conformity": 0, "individuation": 0, "x": 1}', None),
        ("coercive: yes", None),
        ("", None),
    ],
)
def test_only_the_expected_shape_is_a_label(text: str, expected: list[int] | None) -> None:
    labels = parse_labels(text)
    assert (None if labels is None else [labels[c] for c in JUDGE_CATEGORIES]) == expected


def _ask(model: SyntheticModel, text: str, seed: int) -> dict[str, int]:
    messages = load_rubric("en").messages(text, "talk")
    request = ChatRequest("s", 0, 1, "j", messages, 0.0, 1.0, 64, seed)
    labels = parse_labels(model.reply(request))
    assert labels is not None
    return labels


def test_the_synthetic_judge_answers_from_the_oracle_and_flips_at_its_rate() -> None:
    world = load_world("paper")
    text = "This is wrong, and I will not take part in it."
    exact = SyntheticModel(world)
    assert _ask(exact, text, 0) == oracle_labels("en", text)
    assert oracle_labels("en", text)["protective"] == 1
    noisy = SyntheticModel(world.model_copy(update={"judge_error_rate": 0.25}))
    draws = [_ask(noisy, text, seed) for seed in range(2000)]
    assert draws[7] == _ask(noisy, text, 7)  # deterministic per request
    truth = oracle_labels("en", text)
    for category in JUDGE_CATEGORIES:
        flipped = sum(d[category] != truth[category] for d in draws) / len(draws)
        assert abs(flipped - 0.25) < 0.04, category


@pytest.mark.parametrize(("p", "e"), [(0.3, 0.1), (0.05, 0.1), (0.5, 0.0), (0.2, 0.3)])
def test_expected_kappa_matches_the_kappa_of_the_expected_table(p: float, e: float) -> None:
    # a 10,000-item table with exactly the expected cell shares
    n = 10_000
    cells = {(1, 1): p * (1 - e), (1, 0): p * e, (0, 1): (1 - p) * e, (0, 0): (1 - p) * (1 - e)}
    truth, judged = [], []
    for (t, j), share in cells.items():
        count = round(share * n)
        truth += [t] * count
        judged += [j] * count
    assert expected_kappa(p, e) == pytest.approx(
        cohen_kappa(np.array(truth), np.array(judged)), abs=1e-3
    )
    assert expected_kappa(p, 0.0) == pytest.approx(1.0)


def test_a_world_rejects_a_judge_error_rate_outside_0_1(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "w.yaml"
    path.write_text(json.dumps({"name": "w", "base": {}, "judge_error_rate": 1.5}))
    with pytest.raises(ConfigError, match="judge_error_rate"):
        load_world(path)


def test_binary_kappas_are_cohens_kappa_of_the_resample() -> None:
    rng = np.random.default_rng(1)
    x = (rng.random((300, 3)) < [0.2, 0.5, 0.9]).astype(float)
    y = np.where(rng.random((300, 3)) < 0.15, 1 - x, x)
    got = binary_kappas(x, y, np.ones(300))
    for j in range(3):
        assert got[j] == pytest.approx(cohen_kappa(x[:, j], y[:, j]), abs=1e-12)
    pick = rng.integers(0, 300, 300)
    weighted = binary_kappas(x, y, np.bincount(pick, minlength=300).astype(float))
    assert weighted[1] == pytest.approx(cohen_kappa(x[pick, 1], y[pick, 1]), abs=1e-12)
    assert np.isnan(binary_kappas(np.ones((5, 1)), np.ones((5, 1)), np.ones(5))[0])


def _two_by_two(cells: dict[tuple[int, int], int]) -> pd.DataFrame:
    rows = [(lex, judged) for (lex, judged), count in cells.items() for _ in range(count)]
    frame = pd.DataFrame(rows, columns=["lex_coercive", "coercive"])
    for c in JUDGE_CATEGORIES[1:]:  # the other categories copy coercive
        frame[c], frame[f"lex_{c}"] = frame["coercive"], frame["lex_coercive"]
    return frame.assign(language="en", labelled=True, reason=None)


def test_judge_agreement_kappa_ci_matches_the_asymptotic_interval() -> None:
    # statsmodels 0.15.0: cohens_kappa(np.array([[150, 30], [20, 200]])) -> kappa 0.746193,
    # ASE 0.033514, 95% CI [0.680506, 0.811880] (the SAS PROC FREQ large-sample interval);
    # at n = 400 the percentile bootstrap lands within 0.015 of it.
    labels = _two_by_two({(1, 1): 150, (1, 0): 30, (0, 1): 20, (0, 0): 200})
    table = agreement_table(labels, reps=2000, seed=3)
    row = table[table["category"] == "coercive"].iloc[0]
    assert row["comparison"] == "lexicon_vs_judge" and row["n"] == 400
    assert row["kappa"] == pytest.approx(0.746193, abs=1e-6)
    assert row["kappa_low"] == pytest.approx(0.680506, abs=0.015)
    assert row["kappa_high"] == pytest.approx(0.811880, abs=0.015)
    assert (row["ci_level"], row["reps"], row["seed"]) == (0.95, 2000, 3)
    again = agreement_table(labels, reps=2000, seed=3)
    assert again.equals(table)  # seeded
    other = agreement_table(labels, reps=2000, seed=4)
    assert other["kappa_low"].iloc[0] != row["kappa_low"]
