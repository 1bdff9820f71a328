"""Checks on the synthetic backend's phrase banks (``data/synthetic/<lang>.yaml``).

A bank holds, per channel (``talk``, ``monologue``), at least :data:`MIN_SENTENCES`
distinct sentences of each category, and optionally a ``refusal`` list. A sentence may
hold ``{target}`` (filled with a resident's first name); a refusal (used only by worlds
with a refusal rate) is sent as written, so it holds no placeholder. Anything else in
braces would reach the transcripts as written and is refused at load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alignbf.config.prompts import brace_problem
from alignbf.config.yamlfile import entry_error

CHANNELS = ("talk", "monologue")
MIN_SENTENCES = 10
"""Distinct sentences each category needs per channel, so replies do not repeat."""
SENTENCE_PLACEHOLDERS = ("target",)


def check_bank(path: Path, data: dict[str, Any], kinds: tuple[str, ...]) -> None:
    """Refuse a bank that lacks a channel or category, has too few distinct sentences,
    or holds a brace that is not ``{target}``; the error names file, line and entry."""
    if data.get("language") != path.stem:
        problem = f"{data.get('language')!r} does not match the file name {path.name}"
        raise entry_error(path, "language", problem, ("language",))
    for channel in CHANNELS:
        pool = data.get(channel)
        if not isinstance(pool, dict):
            problem = f"must map each category ({', '.join(kinds)}) to a list of sentences"
            raise entry_error(path, channel, problem, (channel,))
        for kind in kinds:
            _check_sentences(path, (channel, kind), pool.get(kind), SENTENCE_PLACEHOLDERS)
    refusal = data.get("refusal")
    if refusal is not None:
        _check_sentences(path, ("refusal",), refusal, (), minimum=0)


def _check_sentences(
    path: Path,
    keys: tuple[str, ...],
    items: object,
    known: tuple[str, ...],
    minimum: int = MIN_SENTENCES,
) -> None:
    where = ".".join(keys)
    if not isinstance(items, list):
        missing = " (missing)" if items is None else ""
        what = f"a list of at least {minimum} sentences" if minimum else "a list of sentences"
        problem = f"must be {what}{missing}"
        raise entry_error(path, where, problem, keys if not missing else keys[:-1])
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            raise entry_error(path, f"{where}[{i}]", "must be a non-empty sentence", keys)
        found = brace_problem(item, known)
        if found is not None:
            raise entry_error(path, f"{where}[{i}]", found[0], found[1], keys)
    distinct = len({item.strip() for item in items})
    if distinct < minimum:
        problem = f"{distinct} distinct sentences; at least {minimum} are needed"
        raise entry_error(path, where, problem, keys)
