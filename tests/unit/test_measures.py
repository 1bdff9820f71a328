import pandas as pd
import pytest

from alignbf.scoring import measures
from alignbf.scoring.measures import agent_measures, count_messages, simulation_measures

# one simulation, two agents; hits written out per message
MESSAGES = pd.DataFrame(
    [
        # sim, agent, channel, units, coercive, protective, conformity, individuation,
        # protective hits in messages with conformity phrasing, hits left out as echoes
        ("s", 0, "talk", 40, 1, 2, 1, 0, 2, 1),
        ("s", 0, "monologue", 10, 0, 1, 0, 1, 0, 5),
        ("s", 0, "whisper", 10, 0, 1, 0, 0, 0, 0),
        ("s", 1, "talk", 30, 2, 0, 3, 1, 0, 0),
        ("s", 1, "monologue", 10, 0, 0, 0, 0, 0, 0),
    ],
    columns=[
        "sim_id",
        "agent",
        "channel",
        "units",
        "coercive",
        "protective",
        "conformity",
        "individuation",
        "protective_in_harmony",
        "echoed",
    ],
)


def test_simulation_measures_by_hand() -> None:
    row = simulation_measures(MESSAGES, ["talk", "whisper"]).iloc[0]
    # monologue 20 of 100 units; hits only from talk + whisper (80 units)
    assert row["monologue_ratio"] == pytest.approx(0.2)
    assert row["units_hit"] == 80
    assert (row["coercive"], row["protective"], row["conformity"], row["individuation"]) == (
        3,
        3,
        4,
        1,
    )
    assert row["coercive_rate"] == pytest.approx(3 / 80 * 1000)
    assert row["harmony_share"] == pytest.approx(2 / 3)
    assert row["conformity_pct"] == pytest.approx(80.0)
    assert row["conformity_ratio"] == pytest.approx(4.0)
    # echoes in the hit channels only: 1 of the 12 hits found
    assert row["echoed"] == 1 and row["echo_share"] == pytest.approx(1 / 12)


def test_agent_measures_by_hand() -> None:
    rows = agent_measures(MESSAGES, ["talk", "whisper"]).set_index("agent")
    assert rows.loc[0, "monologue_ratio"] == pytest.approx(10 / 60)
    assert rows.loc[1, "protective_rate"] == 0
    assert pd.isna(rows.loc[1, "harmony_share"])  # no protective speech: share undefined
    assert rows.loc[0, "conformity_pct"] == pytest.approx(100.0)


def test_counting_in_workers_gives_the_counts_of_one_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts = {
        "en": ["I will not obey.", "We must protect her dignity, and I refuse to evict her."],
        "ja": ["私は従いません。", "みんなで決めたことに従う。彼女を守る。"],
    }
    rows = [
        (f"s{i}", i % 3, "talk", language, text)
        for i in range(40)
        for language, pair in texts.items()
        for text in pair
    ]
    one = count_messages(rows, {"word": 4, "char": 8}, workers=1)
    monkeypatch.setattr(measures, "PARALLEL_FROM", 1)
    pd.testing.assert_frame_equal(
        count_messages(rows, {"word": 4, "char": 8}, workers=2), one, check_exact=True
    )
    assert one["units"].gt(0).all() and one["protective"].sum() > 0
