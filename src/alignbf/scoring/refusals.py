"""Refusals: replies in which the model declines the task or steps out of its role.

A refusal is data, not speech of a resident: it is counted per simulation
(``refusal_share``) beside the ``content_filter`` finishes of its calls, and the
lexicon scores are left as they are. The patterns live per language in
``data/refusals/<lang>.yaml``, apart from the scoring lexicons::

    language: en
    version: "1"
    patterns:
      - id: as_an_ai                      # unique within the file
        regex: '\\bas an? (?:ai|language model)\\b'
        note: optional free text

Matching is case-insensitive on text in NFKC form, with typographic apostrophes
made plain and (for Arabic) diacritics and tatweel removed and hamzated alifs
written bare. A reply is a refusal when any of its channels (talk, monologue,
whisper) matches any pattern of its language.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alignbf.config import assets
from alignbf.config.yamlfile import line_of, load_yaml
from alignbf.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from alignbf.store.store import Store

REFUSALS_VERSION = "1"
"""Version of the classification rule (the pattern files carry their own)."""
REFUSAL_COLUMNS = ["sim_id", "replies", "refusals", "refusal_share", "content_filter_calls"]
_TOP_KEYS = {"language", "version", "patterns"}
_ENTRY_KEYS = {"id", "regex", "note"}
_FOLD = str.maketrans(
    {"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u00b4": "'", "`": "'"}
    | {"\u0623": "\u0627", "\u0625": "\u0627", "\u0622": "\u0627", "\u0640": None}
)
_ARABIC_MARKS = re.compile("[\u064b-\u0652\u0670]")
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """The form both patterns and replies are matched in (see the module docstring)."""
    folded = unicodedata.normalize("NFKC", text).translate(_FOLD)
    return _SPACE.sub(" ", _ARABIC_MARKS.sub("", folded))


@dataclass(frozen=True)
class RefusalPatterns:
    """The refusal patterns of one language."""

    language: str
    version: str
    path: Path
    patterns: tuple[tuple[str, re.Pattern[str]], ...]
    """(id, compiled regex), in file order."""
    combined: re.Pattern[str]
    """Every pattern in one alternation: one scan of a reply instead of one per pattern."""

    def match(self, text: str) -> str | None:
        """The id of the first pattern found in ``text``, or None."""
        plain = normalize(text)
        for name, pattern in self.patterns:
            if pattern.search(plain):
                return name
        return None

    def is_refusal(self, text: str) -> bool:
        """True when ``text`` refuses the task or steps out of role."""
        return self.combined.search(normalize(text)) is not None


def refusal_file(language: str) -> Path:
    """The pattern file used for ``language`` (the project's, else the built-in one)."""
    return assets.path("data", "refusals", f"{language}.yaml").resolve()


def load_refusals(language: str) -> RefusalPatterns:
    """The refusal patterns of a language (one-line ``ConfigError`` when the file is bad)."""
    path = refusal_file(language)
    if not path.exists():
        raise ConfigError(f"{path}: no refusal patterns for language {language!r}")
    return load_refusal_file(path)


def _entry(path: Path, i: int, raw: Any, seen: set[str]) -> tuple[str, re.Pattern[str]]:
    where = f"{path}: patterns[{i}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with id and regex")
    name = raw.get("id")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: missing id")
    where = f"{path}: {line_of(path, f'id: {name}')}patterns[{i}] ({name})"
    unknown = sorted(set(raw) - _ENTRY_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; accepted: id, regex, note")
    if name in seen:
        raise ConfigError(f"{where}: duplicate id {name!r}")
    regex = raw.get("regex")
    if not isinstance(regex, str) or not regex.strip():
        raise ConfigError(f"{where}: regex must be a non-empty string")
    try:
        # compiled as a group, as it stands in the combined alternation
        compiled = re.compile(f"(?:{normalize(regex)})", re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(f"{where}: bad regex ({exc})") from None
    if compiled.search(""):
        raise ConfigError(f"{where}: regex matches the empty text (it would match every reply)")
    seen.add(name)
    return name, compiled


@cache
def load_refusal_file(path: Path) -> RefusalPatterns:
    """Read and check one pattern file through the strict YAML loader.

    Raises:
        ConfigError: unknown key, missing or duplicate id, bad or empty regex, or a
            ``language`` that differs from the file name; one line naming file and entry.
    """
    data = load_yaml(path)
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r}; accepted: {', '.join(sorted(_TOP_KEYS))}"
        )
    language = data.get("language")
    if language != path.stem:
        raise ConfigError(f"{path}: language is {language!r}, expected {path.stem!r}")
    entries = data.get("patterns")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: patterns must be a non-empty list")
    seen: set[str] = set()
    patterns = tuple(_entry(path, i, raw, seen) for i, raw in enumerate(entries))
    combined = re.compile("|".join(p.pattern for _, p in patterns), re.IGNORECASE)
    return RefusalPatterns(language, str(data.get("version", "")), path, patterns, combined)


def reply_refusals(rows: Iterable[tuple[str, str, str]]) -> dict[str, tuple[int, int]]:
    """Per simulation, (replies, refusals) from ``(sim_id, language, reply text)`` rows."""
    out: dict[str, list[int]] = {}
    patterns: dict[str, RefusalPatterns] = {}
    for sim_id, language, text in rows:
        if language not in patterns:
            patterns[language] = load_refusals(language)
        counts = out.setdefault(sim_id, [0, 0])
        counts[0] += 1
        counts[1] += patterns[language].is_refusal(text or "")
    return {sim_id: (n, k) for sim_id, (n, k) in out.items()}


def simulation_refusals(store: Store) -> pd.DataFrame:
    """Refusals and content-filter finishes of every simulation with a stored transcript.

    A reply is one agent's answer in one turn (its channels joined). Content-filter
    calls are the paid responses of the simulation whose ``finish_reason`` is
    ``content_filter`` (their text is empty or cut, so they are not refusals by text).

    Returns:
        One row per simulation: ``sim_id``, ``replies``, ``refusals``,
        ``refusal_share`` (refusals / replies) and ``content_filter_calls``.
    """
    import pandas as pd

    from alignbf.store.reader import content_filter_calls, reply_texts

    counts = reply_refusals(reply_texts(store))
    filtered = content_filter_calls(store)
    frame = pd.DataFrame(
        [(sim_id, n, k) for sim_id, (n, k) in counts.items()],
        columns=["sim_id", "replies", "refusals"],
    )
    frame["refusal_share"] = frame["refusals"] / frame["replies"]
    frame["content_filter_calls"] = frame["sim_id"].map(filtered).fillna(0).astype(int)
    return frame[REFUSAL_COLUMNS]


def refusal_scores(store: Store) -> pd.DataFrame:
    """The refusal columns of the simulation scores: ``sim_id``, ``refusal_share`` and
    ``content_filter_calls`` (see :func:`simulation_refusals`)."""
    return simulation_refusals(store)[["sim_id", "refusal_share", "content_filter_calls"]]


def refusal_hashes(languages: Iterable[str]) -> dict[str, str]:
    """sha256 of each language's pattern file (part of the scores' fingerprint)."""
    import hashlib

    return {
        lang: hashlib.sha256(refusal_file(lang).read_bytes()).hexdigest()
        for lang in sorted(languages)
        if refusal_file(lang).exists()
    }
