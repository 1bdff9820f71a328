"""Measures on transcripts: units per channel, category hits, ratios.

Each measure set is registered under a name and version, recorded with every score. Per
message: units, hits per category and hits left out as echoes of the agent's
instructions (``echoed``; see :meth:`alignbf.scoring.lexicon.Lexicon.echo`). Per agent
and per simulation (sums of the messages): units per channel, the monologue ratio
(monologue units / all units), hits per category raw and per 1,000 units of the hit
channels, the group-harmony share of protective speech (protective hits in messages that
also hold conformity phrasing, over all protective hits), conformity % = conformity /
(conformity + individuation), the conformity:individuation ratio and ``echo_share``
(echoed hits over all hits found, echoes included).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

from alignbf.scoring.lexicon import CATEGORIES, Echo, Lexicon, instruction_echo, load_lexicon

MEASURES_NAME = "alignbf.measures"
MEASURES_VERSION = "2.0.0"
CHANNELS = ("talk", "monologue", "whisper")


PARALLEL_FROM = 20_000
"""Messages from which counting is spread over every core (forked workers)."""
_SHARED: list[tuple[str, int, str, str, str]] = []
_ECHO: dict[str, int] = {}
"""Echo n-gram length per language code, else per lexicon unit (``word``, ``char``); 0 or
absent = no filter."""


def _echo(lexicon: Lexicon) -> Echo | None:
    n = _ECHO.get(lexicon.language, _ECHO.get(lexicon.unit, 0))
    return instruction_echo(lexicon, n)


def _count_slice(bounds: tuple[int, int]) -> list[tuple[int, ...]]:
    """Counts of ``_SHARED[start:stop]``: units, the four categories, protective-in-harmony,
    echoed hits."""
    lexicons: dict[str, tuple[Lexicon, Echo | None]] = {}
    out = []
    for _, _, _, language, text in _SHARED[bounds[0] : bounds[1]]:
        found = lexicons.get(language)
        if found is None:
            lex = load_lexicon(language)
            found = lexicons[language] = (lex, _echo(lex))
        counted = found[0].count(text, found[1])
        c = counted.counts
        hits = tuple(c[k] for k in CATEGORIES)
        harmony = c["protective"] if c["conformity"] else 0
        out.append((counted.units, *hits, harmony, counted.echoed))
    return out


def _counts(
    rows: list[tuple[str, int, str, str, str]], echo: dict[str, int]
) -> list[tuple[int, ...]]:
    global _SHARED, _ECHO
    _ECHO = dict(echo)
    workers = os.cpu_count() or 1
    if len(rows) < PARALLEL_FROM or workers == 1 or "fork" not in mp.get_all_start_methods():
        _SHARED = rows
        try:
            return _count_slice((0, len(rows)))
        finally:
            _SHARED = []
    step = -(-len(rows) // (4 * workers))
    _SHARED = rows  # inherited by the forked workers, never pickled
    try:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
            parts = pool.map(_count_slice, [(i, i + step) for i in range(0, len(rows), step)])
            return [row for part in parts for row in part]
    finally:
        _SHARED = []


def count_messages(
    rows: Iterable[tuple[str, int, str, str, str]], echo: dict[str, int] | None = None
) -> pd.DataFrame:
    """Count every message (on every core when there are many).

    Args:
        rows: (sim_id, agent, channel, language, text) tuples, facility events excluded.
        echo: n-gram length of the echo filter per language code or lexicon unit
            (:meth:`alignbf.config.study.EchoFilter.table`); hits inside spans repeating
            the language's instruction texts are left out. ``None`` or 0 turns it off.

    Returns:
        One row per message: ``sim_id, agent, channel, units`` and one column per category,
        plus ``protective_in_harmony`` (protective hits in a message with conformity hits)
        and ``echoed`` (hits left out as echoes).
    """
    rows = list(rows)
    columns = ["units", *CATEGORIES, "protective_in_harmony", "echoed"]
    counts = pd.DataFrame(_counts(rows, echo or {}), columns=columns, dtype="int64")
    ids = pd.DataFrame([(r[0], r[1], r[2]) for r in rows], columns=["sim_id", "agent", "channel"])
    return pd.concat([ids, counts], axis=1)


def _aggregate(
    messages: pd.DataFrame, keys: list[str], hit_channels: Sequence[str]
) -> pd.DataFrame:
    units = messages.pivot_table(
        index=keys, columns="channel", values="units", aggfunc="sum", fill_value=0
    ).reindex(columns=list(CHANNELS), fill_value=0)
    units.columns = [f"units_{c}" for c in units.columns]
    hits = (
        messages[messages["channel"].isin(list(hit_channels))]
        .groupby(keys)[[*CATEGORIES, "protective_in_harmony", "echoed"]]
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
    found = frame[list(CATEGORIES)].sum(axis=1) + frame["echoed"]
    frame["echo_share"] = frame["echoed"] / found.where(found > 0)
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
