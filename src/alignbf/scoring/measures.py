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
from array import array
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

from alignbf.scoring.lexicon import CATEGORIES, Echo, Lexicon, instruction_echo, load_lexicon

MEASURES_NAME = "alignbf.measures"
MEASURES_VERSION = "2.1.0"
CHANNELS = ("talk", "monologue", "whisper")


PARALLEL_FROM = 20_000
"""Messages from which counting is spread over every core (forked workers)."""
_COLUMNS = ["units", *CATEGORIES, "protective_in_harmony", "echoed"]
_SHARED: list[tuple[str, int, str, str, str]] = []
_LEXICONS: dict[str, tuple[Lexicon, Echo | None]] = {}
"""The lexicon and echo index of every language of ``_SHARED``, compiled before forking."""


def _prepare(
    rows: list[tuple[str, int, str, str, str]], echo: dict[str, int], forking: bool
) -> None:
    """Load the lexicon and echo index of every language of ``rows`` into ``_LEXICONS``
    (each lexicon compiled in full before forking, or its workers would each compile it)."""
    _LEXICONS.clear()
    for language in dict.fromkeys(row[3] for row in rows):
        lexicon = load_lexicon(language)
        if forking:
            lexicon.prepare()
        n = echo.get(language, echo.get(lexicon.unit, 0))
        _LEXICONS[language] = (lexicon, instruction_echo(lexicon, n))


def _count_slice(bounds: tuple[int, int]) -> array[int]:
    """Counts of ``_SHARED[start:stop]``, one run of ``len(_COLUMNS)`` numbers per message:
    units, the four categories, protective-in-harmony, echoed hits."""
    lexicons = _LEXICONS
    out: array[int] = array("q")
    add = out.extend
    for _, _, _, language, text in _SHARED[bounds[0] : bounds[1]]:
        lexicon, echo = lexicons[language]
        units, coercive, protective, conformity, individuation, echoed = lexicon.tally(text, echo)
        harmony = protective if conformity else 0
        add((units, coercive, protective, conformity, individuation, harmony, echoed))
    return out


def _counts(
    rows: list[tuple[str, int, str, str, str]], echo: dict[str, int], workers: int | None
) -> array[int]:
    global _SHARED
    workers = workers or os.cpu_count() or 1
    serial = len(rows) < PARALLEL_FROM or workers == 1 or "fork" not in mp.get_all_start_methods()
    _prepare(rows, echo, forking=not serial)
    _SHARED = rows  # inherited by forked workers, never pickled
    try:
        if serial:
            return _count_slice((0, len(rows)))
        # Many small slices, so that no worker is left with a long one at the end.
        step = -(-len(rows) // (16 * workers))
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
            out: array[int] = array("q")
            for part in pool.map(_count_slice, [(i, i + step) for i in range(0, len(rows), step)]):
                out.extend(part)
            return out
    finally:
        _SHARED = []
        _LEXICONS.clear()


def count_messages(
    rows: Iterable[tuple[str, int, str, str, str]],
    echo: dict[str, int] | None = None,
    workers: int | None = None,
) -> pd.DataFrame:
    """Count every message (on every core when there are many).

    Args:
        rows: (sim_id, agent, channel, language, text) tuples, facility events excluded.
        echo: n-gram length of the echo filter per language code or lexicon unit
            (:meth:`alignbf.config.study.EchoFilter.table`); hits inside spans repeating
            the language's instruction texts are left out. ``None`` or 0 turns it off.
        workers: processes to count in from :data:`PARALLEL_FROM` messages on (default:
            every core; 1 counts in this process).

    Returns:
        One row per message: ``sim_id, agent, channel, units`` and one column per category,
        plus ``protective_in_harmony`` (protective hits in a message with conformity hits)
        and ``echoed`` (hits left out as echoes).
    """
    rows = list(rows)
    counts = np.frombuffer(_counts(rows, echo or {}, workers), dtype=np.int64)
    counts = counts.reshape(len(rows), len(_COLUMNS))
    columns: dict[str, object] = {
        "sim_id": [r[0] for r in rows],
        "agent": [r[1] for r in rows],
        "channel": [r[2] for r in rows],
    }
    columns.update((name, counts[:, i]) for i, name in enumerate(_COLUMNS))
    return pd.DataFrame(columns)


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
