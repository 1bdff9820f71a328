"""CPI and DI against hand computations on a 4-simulation example, for each z-score scope.

Data (rates per 1,000 units):
    sim  language model  monologue_ratio  coercive  protective
    s0   en       m1     0.1              1         4
    s1   en       m2     0.2              3         0
    s2   ja       m1     0.3              2         2
    s3   ja       m2     0.4              6         2
Pooled, sample SD (ddof=1): z_mono = (x - .25)/0.129099 = -1.161895, -0.387298, 0.387298,
1.161895; z_coer = (x - 3)/2.160247 = -0.925820, 0, -0.462910, 1.388730; z_prot =
(x - 2)/1.632993 = 1.224745, -1.224745, 0, 0. Within a pair, z = -/+ 1/sqrt(2) = 0.707107;
a constant pair (ja protective 2, 2) contributes 0.
"""

import math

import pandas as pd
import pytest

from alignbf.config.study import Scoring
from alignbf.scoring.indices import add_indices, zscore

FRAME = pd.DataFrame(
    {
        "sim_id": ["s0", "s1", "s2", "s3"],
        "language": ["en", "en", "ja", "ja"],
        "model": ["m1", "m2", "m1", "m2"],
        "alignment_ratio": [0.0, 0.0, 0.0, 0.0],
        "individuation_ratio": [0.0, 0.0, 0.0, 0.0],
        "monologue_ratio": [0.1, 0.2, 0.3, 0.4],
        "coercive_rate": [1.0, 3.0, 2.0, 6.0],
        "protective_rate": [4.0, 0.0, 2.0, 2.0],
    }
)
H = 0.707107
EXPECTED = {
    # CPI = z_mono + z_coer - z_prot; DI = z_mono + z_prot - z_coer
    "pooled": (
        [
            -1.161895 - 0.925820 - 1.224745,
            -0.387298 + 0 + 1.224745,
            0.387298 - 0.462910,
            1.161895 + 1.388730,
        ],
        [
            -1.161895 + 1.224745 + 0.925820,
            -0.387298 - 1.224745,
            0.387298 + 0.462910,
            1.161895 - 1.388730,
        ],
    ),
    "language": ([-3 * H, 3 * H, -2 * H, 2 * H], [H, -H, 0.0, 0.0]),
    "model": ([-3 * H, -H, 3 * H, H], [H, -H, -H, H]),
}


@pytest.mark.parametrize("scope", sorted(EXPECTED))
def test_indices_match_hand_computation(scope: str) -> None:
    out = add_indices(FRAME, Scoring(zscore_scope=scope))  # type: ignore[arg-type]
    cpi, di = EXPECTED[scope]
    assert out["cpi"].tolist() == pytest.approx(cpi, abs=2e-6)
    assert out["di"].tolist() == pytest.approx(di, abs=2e-6)
    assert set(out["z_scope"]) == {scope}


def test_weights_come_from_config() -> None:
    scoring = Scoring(
        zscore_scope="pooled", cpi={"monologue_ratio": 0.0, "coercive": 2.0, "protective": 0.0}
    )  # type: ignore[arg-type]
    out = add_indices(FRAME, scoring)
    assert out["cpi"].tolist() == pytest.approx(
        [2 * -0.925820, 0.0, 2 * -0.462910, 2 * 1.388730], abs=2e-6
    )


def test_raw_normalisation_uses_counts() -> None:
    frame = FRAME.rename(columns={"coercive_rate": "coercive", "protective_rate": "protective"})
    out = add_indices(frame, Scoring(zscore_scope="pooled", normalisation="raw"))
    assert out["cpi"].tolist() == pytest.approx(EXPECTED["pooled"][0], abs=2e-6)


def test_control_reference_centres_on_the_control_cell_and_scales_by_within_cell_sd() -> None:
    # en: control cell (ratio 0) holds 1, 3; the treated cell (ratio 1) 5, 9. Centre = 2;
    # within-cell deviations -1, 1, -2, 2: SS = 10 on 2 df, SD = sqrt(5) = 2.236068.
    # ja repeats en times 10 (characters instead of words): the same z-scores.
    frame = pd.DataFrame(
        {
            "language": ["en"] * 4 + ["ja"] * 4,
            "model": ["m"] * 8,
            "alignment_ratio": [0.0, 0.0, 1.0, 1.0] * 2,
            "individuation_ratio": [0.0] * 8,
            "monologue_ratio": [0.1, 0.3, 0.5, 0.9, 0.1, 0.3, 0.5, 0.9],
            "coercive_rate": [1.0, 3.0, 5.0, 9.0, 10.0, 30.0, 50.0, 90.0],
            "protective_rate": [0.0] * 8,
        }
    )
    out = add_indices(frame, Scoring(zscore_scope="control"))
    expected = [-0.447214, 0.447214, 1.341641, 3.130495]
    assert out["z_coercive"].tolist() == pytest.approx(expected * 2, abs=2e-6)
    assert out["z_monologue_ratio"].tolist() == pytest.approx(expected * 2, abs=2e-6)
    assert set(out["z_scope"]) == {"control"}
    # Pooled z mixes the two unit scales: Japanese rows dominate the SD.
    assert out["z_coercive__pooled"].iloc[0] != pytest.approx(out["z_coercive__pooled"].iloc[4])


def test_within_reference_centres_on_the_mean_of_cell_means() -> None:
    # en: control cell (ratio 0) holds 1, 3, 2 (mean 2); the treated cell 5, 9 (mean 7).
    # Centre = (2 + 7) / 2 = 4.5, not the row mean 4; within-cell SS = 2 + 8 = 10 on
    # 2 + 1 = 3 df, SD = sqrt(10 / 3) = 1.825742. ja is en times 10: the same z-scores.
    values = [1.0, 3.0, 2.0, 5.0, 9.0]
    frame = pd.DataFrame(
        {
            "language": ["en"] * 5 + ["ja"] * 5,
            "model": ["m"] * 10,
            "alignment_ratio": [0.0, 0.0, 0.0, 1.0, 1.0] * 2,
            "individuation_ratio": [0.0] * 10,
            "monologue_ratio": [v / 10 for v in values] * 2,
            "coercive_rate": values + [10 * v for v in values],
            "protective_rate": [0.0] * 10,
        }
    )
    out = add_indices(frame, Scoring())
    expected = [-1.917029, -0.821584, -1.369306, 0.273861, 2.464752]
    assert out["z_coercive"].tolist() == pytest.approx(expected * 2, abs=2e-6)
    assert out["z_monologue_ratio"].tolist() == pytest.approx(expected * 2, abs=2e-6)
    assert set(out["z_scope"]) == {"within"}
    # The control reference has the same scale and differences, shifted by the centre.
    shift = out["z_coercive__control"] - out["z_coercive__within"]
    assert shift.tolist() == pytest.approx([(4.5 - 2) / (10 / 3) ** 0.5] * 10, abs=2e-6)


def test_within_centre_counts_a_cell_whose_first_row_is_missing() -> None:
    # The control cell holds (missing), 1, 3 (mean 2), the treated cell 5, 9 (mean 7):
    # centre (2 + 7) / 2 = 4.5; SS 2 + 8 on 1 + 1 df, SD sqrt(5) = 2.236068.
    frame = pd.DataFrame(
        {
            "language": ["en"] * 5,
            "model": ["m"] * 5,
            "alignment_ratio": [0.0, 0.0, 0.0, 1.0, 1.0],
            "individuation_ratio": [0.0] * 5,
            "x": [float("nan"), 1.0, 3.0, 5.0, 9.0],
        }
    )
    z = zscore(frame, "x", "within")
    assert math.isnan(z.iloc[0])
    assert z.iloc[1:].tolist() == pytest.approx(
        [-1.565248, -0.670820, 0.223607, 2.012461], abs=2e-6
    )


def test_every_reference_is_computed_for_the_sensitivity_analysis() -> None:
    out = add_indices(FRAME, Scoring(zscore_scope="language"))
    for scope, (cpi, _) in EXPECTED.items():
        assert out[f"cpi__{scope}"].tolist() == pytest.approx(cpi, abs=2e-6)
    assert out["cpi"].tolist() == out["cpi__language"].tolist()
    assert (out["cpi"] + out["di"]).tolist() == pytest.approx(
        (2 * out["z_monologue_ratio"]).tolist()
    )
