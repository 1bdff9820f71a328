"""Measures on transcripts: units per channel, category hits, ratios.

Each measure set is registered under a name and version, recorded with every score.
Per message: units and hits per category. Per agent and per simulation (sums of the
messages): units per channel, the monologue ratio (monologue units / all units),
hits per category raw and per 1,000 units of the hit channels, the group-harmony
share of protective speech (protective hits in messages that also hold conformity
phrasing, over all protective hits), conformity % = conformity / (conformity +
individuation) and the conformity:individuation ratio.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from alignbf.lexicon import CATEGORIES, load_lexicon

MEASURES_NAME = "alignbf.measures"
MEASURES_VERSION = "1.0.0"
CHANNELS = ("talk", "monologue", "whisper")


def count_messages(rows: Iterable[tuple[str, int, str, str, str]]) -> pd.DataFrame:
    """Count every message.

    Args:
        rows: (sim_id, agent, channel, language, text) tuples, facility events excluded.

    Returns:
        One row per message: ``sim_id, agent, channel, units`` and one column per category,
        plus ``protective_in_harmony`` (protective hits in a message with conformity hits).
    """
    out: dict[str, list[Any]] = {k: [] for k in ("sim_id", "agent", "channel", "units")}
    for c in CATEGORIES:
        out[c] = []
    out["protective_in_harmony"] = []
    lexicons: dict[str, Any] = {}
    for sim_id, agent, channel, language, text in rows:
        lex = lexicons.get(language)
        if lex is None:
            lex = lexicons[language] = load_lexicon(language)
        counted = lex.count(text)
        out["sim_id"].append(sim_id)
        out["agent"].append(agent)
        out["channel"].append(channel)
        out["units"].append(counted.units)
        for c in CATEGORIES:
            out[c].append(counted.counts[c])
        out["protective_in_harmony"].append(
            counted.counts["protective"] if counted.counts["conformity"] else 0
        )
    return pd.DataFrame(out)


def _aggregate(
    messages: pd.DataFrame, keys: list[str], hit_channels: Sequence[str]
) -> pd.DataFrame:
    units = messages.pivot_table(
        index=keys, columns="channel", values="units", aggfunc="sum", fill_value=0
    ).reindex(columns=list(CHANNELS), fill_value=0)
    units.columns = [f"units_{c}" for c in units.columns]
    hits = (
        messages[messages["channel"].isin(list(hit_channels))]
        .groupby(keys)[[*CATEGORIES, "protective_in_harmony"]]
        .sum()
    )
    frame = units.join(hits, how="left").fillna(0)
    frame["units_hit"] = frame[[f"units_{c}" for c in hit_channels]].sum(axis=1)
    total = frame[[f"units_{c}" for c in CHANNELS]].sum(axis=1)
    frame["monologue_ratio"] = np.where(
        total > 0, frame["units_monologue"] / total.where(total > 0, 1), np.nan
    )
    per = frame["units_hit"].where(frame["units_hit"] > 0)
    for c in CATEGORIES:
        frame[f"{c}_rate"] = frame[c] / per * 1000
    frame["harmony_share"] = frame["protective_in_harmony"] / frame["protective"].where(
        frame["protective"] > 0
    )
    both = frame["conformity"] + frame["individuation"]
    frame["conformity_pct"] = 100 * frame["conformity"] / both.where(both > 0)
    frame["conformity_ratio"] = frame["conformity"] / frame["individuation"].where(
        frame["individuation"] > 0
    )
    return frame.reset_index()


def simulation_measures(messages: pd.DataFrame, hit_channels: Sequence[str]) -> pd.DataFrame:
    """Measures per simulation (sums over its agents)."""
    return _aggregate(messages, ["sim_id"], hit_channels)


def agent_measures(messages: pd.DataFrame, hit_channels: Sequence[str]) -> pd.DataFrame:
    """Measures per agent of each simulation."""
    return _aggregate(messages, ["sim_id", "agent"], hit_channels)
