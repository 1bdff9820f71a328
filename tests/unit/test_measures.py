import pandas as pd
import pytest

from alignbf.scoring.measures import agent_measures, simulation_measures

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
