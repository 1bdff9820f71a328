"""Preregistration files: every study's file loads, every reported result has a hypothesis,
decision rules give the documented verdicts, and bad files give one line."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest

from alignbf.config import assets
from alignbf.config.hypotheses import Hypothesis, Prereg, load_prereg, parse_prereg
from alignbf.config.yamlfile import load_yaml
from alignbf.errors import ConfigError

STUDIES = ("study1", "study2", "study3", "study4")

# PAPER.md "Reported results", one entry per table row: the hypotheses that test it.
PAPER_ROWS = {
    "1: CPI 0% vs 100%, English g = -1.844, Japanese g = +0.771": [
        "s1_en_cpi",
        "s1_ja_cpi",
        "s1_cpi_interaction",
    ],
    "1: 89.2% harmony phrasing; conformity:individuation 180.6:1 vs 27.1:1": [
        "s1_ja_harmony_share",
        "s1_ja_conformity_ratio",
    ],
    "2: DI rises in 15/16 languages, pooled beta = 0.0667": ["s2_di_count", "s2_di_pooled"],
    "2: CPI alignment x language beta = 0.0684; 8 languages amplified": [
        "s2_cpi_interaction",
        "s2_cpi_amplified_count",
    ],
    "2: per-language CPI effect vs PDI, r = 0.474": ["s2_cpi_pdi"],
    "3: individuated agents main source, DI = +1.120; conformity > 84%": [
        "s3_di_individuated",
        "s3_cpi_individuated",
        "s3_conformity",
    ],
    "4: English effect for all three models; Japanese backfire Llama-specific": [
        "s4_en_gpt",
        "s4_en_qwen",
        "s4_en_llama",
        "s4_ja_llama",
        "s4_ja_gpt",
        "s4_ja_qwen",
        "s4_ja_llama_specific",
    ],
}


def _all() -> dict[str, Hypothesis]:
    out = {}
    for study in STUDIES:
        for h in load_prereg(assets.path("prereg", f"{study}.yaml")).hypotheses:
            out[h.id] = h
    return out


@pytest.mark.parametrize("study", STUDIES)
def test_prereg_loads_and_names_its_study(study: str) -> None:
    prereg = load_prereg(assets.path("prereg", f"{study}.yaml"))
    assert isinstance(prereg, Prereg) and prereg.study == study
    assert all(h.id.startswith(f"s{study[-1]}_") for h in prereg.hypotheses)


def test_every_paper_result_has_a_hypothesis() -> None:
    hypotheses = _all()
    for row, ids in PAPER_ROWS.items():
        missing = [i for i in ids if i not in hypotheses]
        assert not missing, f"{row}: no hypothesis {missing}"
    assert set(hypotheses) == {i for ids in PAPER_ROWS.values() for i in ids}


def test_a_combined_source_must_be_declared(tmp_path: Path) -> None:
    text = assets.path("prereg", "study4.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "study4.yaml"
    bad.write_text(text.replace("combine: [study1]", "combine: [study9]"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"combine 'study9' is not declared in inputs"):
        load_prereg(bad)


def test_hypotheses_agree_with_paper_results_file() -> None:
    hypotheses = _all()
    results = load_yaml(assets.path("data", "paper_results.yaml"))["results"]
    assert set(results) == set(hypotheses)
    for key, result in results.items():
        h = hypotheses[key]
        assert h.expected == result["direction"], key
        assert h.reference.source == result["source"], key
        if "estimate" in result and h.reference.value is not None:
            assert math.isclose(h.reference.value, result["estimate"]), key


def test_study4_llama_cells_come_from_study1() -> None:
    prereg = load_prereg(assets.path("prereg", "study4.yaml"))
    assert prereg.inputs["study1"].study == "study1"
    llama = [h for h in prereg.hypotheses if h.subset.get("model") == "llama-3.3-70b"]
    assert {h.id for h in llama} == {"s4_en_llama", "s4_ja_llama"}
    assert all(h.input == "study1" for h in llama)


def _h(expected: str, bound: float | None = None, decision: str = "significance") -> Hypothesis:
    return Hypothesis.model_validate(
        {
            "id": "h",
            "statement": "s",
            "outcome": "cpi",
            "estimator": {"type": "g_contrast"},
            "expected": expected,
            "family": "f",
            "exploratory": False,
            "decision": decision,
            "reference": {"statistic": "g", "source": "paper"},
            "equivalence_bound": bound,
        }
    )


NAN = math.nan
DECISIONS = [
    # expected, bound, (estimate, ci_low, ci_high, p_adj, null), verdict
    ("positive", None, (1.0, 0.5, 1.5, 0.01, 0.0), "supported"),
    ("positive", None, (-1.0, -1.5, -0.5, 0.01, 0.0), "not_supported"),
    ("positive", None, (0.1, -0.4, 0.6, 0.50, 0.0), "inconclusive"),
    ("positive", 0.5, (0.1, -0.1, 0.3, 0.50, 0.0), "not_supported"),
    ("positive", 0.5, (0.1, -0.6, 0.8, 0.50, 0.0), "inconclusive"),
    ("positive", None, (1.0, 0.5, 1.5, NAN, 0.0), "inconclusive"),
    ("positive", None, (1.0, 0.5, 1.5, 0.06, 0.0), "inconclusive"),
    ("negative", None, (-2.0, -3.0, -1.0, 0.001, 0.0), "supported"),
    ("negative", None, (2.0, 1.0, 3.0, 0.001, 0.0), "not_supported"),
    ("not_positive", 0.5, (-0.3, -1.0, 0.3, 0.40, 0.0), "supported"),
    ("not_positive", 0.5, (1.0, 0.4, 1.6, 0.01, 0.0), "not_supported"),
    ("not_positive", 0.5, (0.3, -0.2, 0.9, 0.30, 0.0), "inconclusive"),
    ("equivalent", 0.1, (0.9, 0.85, 0.95, 0.30, 0.892), "supported"),
    ("equivalent", 0.1, (0.6, 0.50, 0.70, 0.001, 0.892), "not_supported"),
    ("equivalent", 0.1, (0.8, 0.70, 0.95, 0.10, 0.892), "inconclusive"),
    ("positive", None, (0.8, 0.6, 0.9, 0.0001, 0.5), "supported"),
]


@pytest.mark.parametrize(("expected", "bound", "numbers", "verdict"), DECISIONS)
def test_decision_rule(expected: str, bound: float | None, numbers: tuple, verdict: str) -> None:
    assert _h(expected, bound).decide(*numbers) == verdict


REASONS = {
    0: "p_adj = 0.01 < alpha = 0.05, the estimate above 0 as expected",
    1: "p_adj = 0.01 < alpha = 0.05, the estimate below 0, against the expectation",
    2: "p_adj = 0.5 >= alpha = 0.05",
    3: "the 95% CI [-0.1, 0.3] lies inside 0 ± 0.5: no effect of interest",
    4: "p_adj = 0.5 >= alpha = 0.05; the 95% CI [-0.6, 0.8] is not inside 0 ± 0.5",
    5: "no p-value",
    9: "the 95% CI [-1, 0.3] stays below 0.5 (null + bound)",
    11: "the 95% CI [-0.2, 0.9] reaches 0.5 (null + bound) and p_adj = 0.3 >= alpha = 0.05",
    14: "the 95% CI [0.7, 0.95] overlaps the edge of 0.892 ± 0.1",
}


@pytest.mark.parametrize("case", sorted(REASONS))
def test_every_verdict_says_why(case: int) -> None:
    expected, bound, numbers, _ = DECISIONS[case]
    assert _h(expected, bound).reason(*numbers) == REASONS[case]


def test_an_estimator_that_cannot_reach_the_decision_is_refused() -> None:
    def entry(estimator: dict, **more: object) -> dict:
        return {"id": "h", "statement": "s", "outcome": "cpi", "estimator": estimator,
                "expected": "positive", "family": "f", "exploratory": False,
                "reference": {"statistic": "g", "source": "paper"}, **more}  # fmt: skip

    ratio = {"type": "ratio", "numerator": "conformity", "denominator": "individuation"}
    spread = {"type": "interaction", "formula": "cpi ~ a * C(language)",
              "null_formula": "cpi ~ a + C(language)"}  # fmt: skip
    cases = [
        (entry(ratio), "estimator ratio gives no p-value"),
        (entry(spread, expected="negative"), "the SD of slopes has no CI and is never negative"),
        (entry(spread, equivalence_bound=0.2), "needs summary: rest_minus_reference"),
    ]
    for data, message in cases:
        with pytest.raises(ValueError, match=message):
            Hypothesis.model_validate(data)
    Hypothesis.model_validate(entry(ratio, decision="descriptive"))
    Hypothesis.model_validate(entry({**spread, "summary": "rest_minus_reference"},
                                    expected="negative", equivalence_bound=0.2))  # fmt: skip


def test_descriptive_rule_gives_no_verdict() -> None:
    assert _h("positive", decision="descriptive").decide(5.0, 4.0, 6.0, 0.0001) == "descriptive"


def test_not_positive_needs_a_bound() -> None:
    with pytest.raises(ValueError, match="needs an equivalence_bound"):
        _h("not_positive")


def _broken(mutate) -> str:  # type: ignore[no-untyped-def]
    data = copy.deepcopy(load_yaml(assets.path("prereg", "study1.yaml")))
    mutate(data)
    with pytest.raises(ConfigError) as info:
        parse_prereg(data, "p.yaml")
    message = str(info.value)
    assert "\n" not in message and message.startswith("p.yaml: ")
    return message


def test_errors_name_the_field_and_suggest() -> None:
    est = _broken(lambda d: d["hypotheses"][0]["estimator"].update(hgh=1))
    assert "hypotheses[0].estimator.hgh: unknown field (did you mean 'high'?)" in est
    top = _broken(lambda d: d["hypotheses"][0].update(estimatr=1))
    assert "hypotheses[0].estimatr: unknown field (did you mean 'estimator'?)" in top
    assert "hypotheses[1].id 's1_en_cpi' is used twice" in _broken(
        lambda d: d["hypotheses"][1].update(id="s1_en_cpi")
    )
    assert "is not one of: confirmatory, exploratory" in _broken(
        lambda d: d["hypotheses"][0].update(family="primary")
    )
    assert "hypotheses[0].outcome: required field is missing" in _broken(
        lambda d: d["hypotheses"][0].pop("outcome")
    )


def test_study2_counts_use_the_midp_binomial_test() -> None:
    prereg = load_prereg(assets.path("prereg", "study2.yaml"))
    counts = [h for h in prereg.hypotheses if h.estimator.type == "count_languages"]
    assert [h.id for h in counts] == ["s2_di_count", "s2_cpi_amplified_count"]
    assert all(h.estimator.test == "midp" for h in counts)  # type: ignore[union-attr]
    data = copy.deepcopy(load_yaml(assets.path("prereg", "study2.yaml")))
    data["hypotheses"][1]["estimator"]["test"] = "blaker"
    with pytest.raises(ConfigError, match=r"hypotheses\[1\]\.estimator\.test"):
        parse_prereg(data, "p.yaml")
    del data["hypotheses"][1]["estimator"]["test"]
    assert parse_prereg(data, "p.yaml").hypotheses[1].estimator.test == "exact"  # type: ignore[union-attr]


def test_formula_must_model_the_outcome() -> None:
    data = load_yaml(assets.path("prereg", "study2.yaml"))
    data["hypotheses"][0]["outcome"] = "cpi"
    with pytest.raises(ConfigError, match="does not model outcome 'cpi'"):
        parse_prereg(data, "p.yaml")


def test_load_prereg_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_prereg(tmp_path / "nope.yaml")
