"""Report tables built from score frames."""

from __future__ import annotations

import pandas as pd

from alignbf.report.tables import echo_view


def _sims(rows: list[tuple[str, float, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            dict(
                sim_id=f"s{i}",
                language=language,
                alignment_ratio=ratio,
                individuation_ratio=0.0,
                model="m",
                coercive=hits,
                protective=0,
                conformity=0,
                individuation=0,
                echoed=echoed,
            )
            for i, (language, ratio, hits, echoed) in enumerate(rows)
        ]
    )


def test_echo_view_pools_each_cell_and_has_a_row_per_language() -> None:
    sims = _sims(
        [
            ("en", 0.0, 10, 0),
            ("en", 1.0, 6, 2),  # 2 of 8 found
            ("en", 1.0, 12, 0),  # pooled with it: 2 of 20 = 10%
            ("ja", 0.0, 0, 0),  # nothing found: no share
            ("ja", 1.0, 3, 1),
        ]
    )
    view = echo_view(sims)
    assert list(view.columns) == ["language", "alignment 0", "alignment 1"]
    assert view.to_dict("records") == [
        {"language": "en", "alignment 0": "0.0", "alignment 1": "10.0"},
        {"language": "ja", "alignment 0": "–", "alignment 1": "25.0"},
    ]


def test_echo_view_adds_models_and_individuation_only_when_they_vary() -> None:
    sims = _sims([("en", 0.0, 4, 0), ("en", 0.0, 3, 1), ("en", 1.0, 5, 5), ("en", 1.0, 1, 0)])
    sims["model"] = ["a", "b", "a", "b"]
    sims["individuation_ratio"] = [0.0, 0.0, 0.0, 1.0]
    view = echo_view(sims)
    assert list(view.columns) == [
        "language",
        "model",
        "alignment 0 / individuation 0",
        "alignment 1 / individuation 0",
        "alignment 1 / individuation 1",
    ]
    assert view.iloc[0].tolist() == ["en", "a", "0.0", "50.0", "–"]
    assert view.iloc[1].tolist() == ["en", "b", "25.0", "–", "0.0"]
