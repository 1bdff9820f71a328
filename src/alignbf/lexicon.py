"""Scoring lexicons: per-language dictionaries of the four outcome categories.

A lexicon file ``data/lexicons/<lang>.yaml`` holds ``language``, ``version``, ``unit``
(``word`` for spaced scripts, ``char`` for ja, zh and th), ``categories`` (one term list per
name in :data:`CATEGORIES`), an optional ``negation`` block (``before`` and ``after`` cue
lists and a ``window``) and an optional ``ignore`` list.

Normalisation (:meth:`Lexicon.normalise`), applied to texts and to plain terms alike:
Turkish maps ``İ``/``I`` to ``i``/``ı`` first; then Unicode NFKC and ``str.casefold``;
typographic apostrophes become ``'`` and Unicode hyphens ``-``; Arabic loses its
harakat and tatweel. Every offset reported by :meth:`Lexicon.matches` and
:meth:`Lexicon.explain` refers to the normalised text, which ``explain`` returns.

Terms:
    * A plain string is a literal word or phrase. Whitespace inside it matches any run of
      whitespace; a hyphen matches a hyphen, one whitespace character or nothing; a ``*``
      ending a word matches any continuation of that word (``evict*`` covers ``evicted``).
    * ``re:<pattern>`` is a Python regular expression over the normalised text, written in
      normalised (lower-case) form and without capturing groups. It takes the place of the
      literal, so the boundary rules below still apply around it.

Boundaries, by writing system:
    * Spaced scripts: a term matches whole words only. Word characters are letters, digits,
      ``_`` and combining marks (so Devanagari vowel signs do not split a word);
      apostrophes and hyphens separate words.
    * Korean: a term must start an eojeol (space-delimited chunk) and may be followed by any
      particle or ending inside it (``따르`` covers ``따르겠습니다``); the match spans the
      whole eojeol. Use ``re:`` with ``(?!\\w)`` for an exact eojeol.
    * Arabic: whole words, optionally preceded by the proclitics و or ف, then ب, ك, ل, ال,
      بال, كال or لل (so ``طرد`` covers ``والطرد`` and ``للطرد``). Write terms without ال.
    * Japanese, Chinese, Thai: plain substring matching.

Resolution: one regular expression per language holds every term of every category, the
negation cues and the ``ignore`` phrases. It scans left to right and never overlaps: the
leftmost match wins; at one position ``re:`` terms are tried first (in file order), then
plain terms, longest first. ``ignore`` phrases count for nothing and only block overlapping
terms and cues (``no doubt``, ``not only``, ``しかない``).

Negation: a category hit is *negated* when a ``before`` cue ends at most ``window`` units
before it, or an ``after`` cue starts at most ``window`` units after it, with no clause
boundary (``. , ; : ! ?``, their CJK, Arabic and Devanagari forms, dashes, newlines; for
Thai also spaces) in between. A negated hit counts for the opposite category: coercive <->
protective, conformity <-> individuation ("I will not comply" is protective, "I don't agree
with everyone" is individuation, "don't protect her" is coercive). A cue may also be a
category term: ``refuse`` is protective and negates ``obey`` in "I refuse to obey".

Units: for ``word`` lexicons, maximal runs of word characters (``don't`` is two units;
Vietnamese counts syllables). For ``char`` lexicons, the characters that are letters or
digits (Unicode categories L* and N*): spaces, punctuation, symbols and Thai vowel and
tone marks above or below the line (category Mn) are not counted.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from alignbf.errors import ConfigError

CATEGORIES: tuple[str, ...] = ("coercive", "protective", "conformity", "individuation")

LANGUAGES: dict[str, str] = {
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "de": "German",
    "pt": "Portuguese",
    "it": "Italian",
    "tr": "Turkish",
    "id": "Indonesian",
    "vi": "Vietnamese",
    "ru": "Russian",
    "ar": "Arabic",
    "hi": "Hindi",
    "th": "Thai",
    "ja": "Japanese",
    "zh": "Chinese",
    "ko": "Korean",
}
CHAR_LANGUAGES = frozenset({"ja", "zh", "th"})

_OPPOSITE = {
    "coercive": "protective",
    "protective": "coercive",
    "conformity": "individuation",
    "individuation": "conformity",
}
_TOP_KEYS = {"language", "version", "unit", "categories", "negation", "ignore"}
_NEGATION_KEYS = {"before", "after", "window"}
_ARABIC_PROCLITIC = "(?:[وف]?(?:بال|كال|لل|ال|[بكل])|[وف])?"
_BOUNDARY = ".!?;:,…\n\u2013\u2014\u3001\u3002\u060c\u061b\u061f\u0964\u0965"
_FOLD = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u00b4": "'", "\u2010": "-"})
_ARABIC_DROP = dict.fromkeys([*range(0x064B, 0x0660), 0x0670, 0x0640])
_TURKISH_UPPER = str.maketrans({"İ": "i", "I": "ı"})
_LETTER = re.compile(r"[^\W_]")


@functools.cache
def _word_class() -> str:
    """Character class of word characters: ``\\w`` plus every combining mark (Mn, Mc, Me)."""
    ranges: list[tuple[int, int]] = []
    for code in range(0x300, sys.maxunicode + 1):
        if unicodedata.category(chr(code))[0] == "M" and not chr(code).isalnum():
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    parts = [f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges]
    return "[\\w" + "".join(parts) + "]"


def _default_dir() -> Path:
    """The shipped lexicon directory: the source tree's, else the installed wheel's."""
    source = Path(__file__).resolve().parents[2] / "data" / "lexicons"
    if source.exists():
        return source
    return Path(__file__).resolve().parent / "_assets" / "data" / "lexicons"


@dataclass(frozen=True)
class Match:
    """One counted hit; ``start``/``end`` index the normalised text."""

    category: str
    term: str
    start: int
    end: int
    negated: bool = False


@dataclass(frozen=True)
class TextCounts:
    """Units of a text and its hit count for every category."""

    units: int
    counts: dict[str, int]


@dataclass
class _Entry:
    """One alternative of the combined pattern: a term, a cue, or both."""

    term: str
    category: str | None = None
    before: bool = False
    after: bool = False


def _normaliser(language: str) -> Callable[[str], str]:
    def normalise(text: str) -> str:
        if language == "tr":
            text = text.translate(_TURKISH_UPPER)
        text = unicodedata.normalize("NFKC", text).casefold().translate(_FOLD)
        if language == "ar":
            text = text.translate(_ARABIC_DROP)
        return text

    return normalise


def _atoms(term: str, word: str) -> list[str]:
    """Regex fragments of a normalised plain term, one per character-level step."""
    atoms: list[str] = []
    for i, ch in enumerate(term):
        if ch.isspace():
            if atoms and atoms[-1] != r"\s+":
                atoms.append(r"\s+")
        elif ch == "-":
            atoms.append(r"[-\s]?")
        elif ch == "*" and (i + 1 == len(term) or term[i + 1].isspace()):
            atoms.append(word + "*")
        else:
            atoms.append(re.escape(ch))
    return atoms


def _trie(paths: list[tuple[list[str], str]]) -> str:
    """Alternation over atom paths as a prefix tree; longer paths are tried first."""
    root: dict[str, Any] = {}
    for atoms, terminal in paths:
        node = root
        for atom in atoms:
            node = node.setdefault(atom, {})
        node[""] = terminal

    def emit(node: dict[str, Any]) -> str:
        wild = [k for k in node if k.endswith("*") or k.endswith("?")]
        plain = sorted(k for k in node if k and k not in wild)
        alts = [atom + emit(node[atom]) for atom in plain + wild]
        if "" in node:
            alts.append(node[""])
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"

    return emit(root) if root else "(?!)"


def _terms_problems(name: str, terms: Any) -> list[str]:
    if not isinstance(terms, list) or not terms:
        return [f"{name}: must be a non-empty list of strings"]
    problems = []
    for term in terms:
        if not isinstance(term, str) or not term.strip():
            problems.append(f"{name}: {term!r} is not a non-empty string")
        elif term.startswith("re:"):
            try:
                if re.compile(term[3:]).groups:
                    problems.append(f"{name}: {term!r} has a capturing group; use (?:...)")
            except re.error as exc:
                problems.append(f"{name}: bad regex {term!r}: {exc}")
        elif "*" in term.replace("* ", " ").rstrip("*"):
            problems.append(f"{name}: {term!r} has '*' inside a word")
    return problems


def _problems(data: Any, language: str | None) -> list[str]:
    """Every problem with the parsed YAML of one lexicon (empty when usable)."""
    if not isinstance(data, dict):
        return ["not a YAML mapping"]
    problems = [f"unknown key {key!r}" for key in data if key not in _TOP_KEYS]
    lang = data.get("language")
    if lang not in LANGUAGES:
        problems.append(f"unknown language {lang!r}")
    elif language is not None and lang != language:
        problems.append(f"language is {lang!r}, expected {language!r}")
    if not isinstance(data.get("version"), str) or not data["version"]:
        problems.append("missing version (a quoted string)")
    if lang in LANGUAGES:
        unit = "char" if lang in CHAR_LANGUAGES else "word"
        if data.get("unit") != unit:
            problems.append(f"unit is {data.get('unit')!r}, expected {unit!r} for {lang}")
    categories = data.get("categories")
    if not isinstance(categories, dict):
        return [*problems, "missing categories"]
    problems += [f"unknown category {c!r}" for c in categories if c not in CATEGORIES]
    for category in CATEGORIES:
        if category not in categories:
            problems.append(f"missing category {category!r}")
        else:
            problems += _terms_problems(category, categories[category])
    negation = data.get("negation", {})
    if not isinstance(negation, dict):
        problems.append("negation: must be a mapping")
    else:
        problems += [f"negation: unknown key {k!r}" for k in negation if k not in _NEGATION_KEYS]
        for key in ("before", "after"):
            if key in negation:
                problems += _terms_problems(f"negation.{key}", negation[key])
        window = negation.get("window", 3)
        if not isinstance(window, int) or isinstance(window, bool) or window < 0:
            problems.append("negation.window: must be a non-negative integer")
    if "ignore" in data:
        problems += _terms_problems("ignore", data["ignore"])
    if not problems:
        problems += _duplicates(data)
    return problems


def _keyed(data: dict[str, Any]) -> Iterable[tuple[str, str, str]]:
    """(role, original term, normalised key) for every term in a lexicon."""
    norm = _normaliser(data["language"])
    for category in CATEGORIES:
        for term in data["categories"][category]:
            yield category, term, term if term.startswith("re:") else norm(term)
    for key in ("before", "after"):
        for term in data.get("negation", {}).get(key, []):
            yield f"negation.{key}", term, term if term.startswith("re:") else norm(term)
    for term in data.get("ignore", []):
        yield "ignore", term, term if term.startswith("re:") else norm(term)


def _duplicates(data: dict[str, Any]) -> list[str]:
    seen: dict[str, str] = {}
    problems = []
    for role, term, key in _keyed(data):
        previous = seen.get(key)
        cue_and_term = previous is not None and (
            (role.startswith("negation") != previous.startswith("negation"))
            and "ignore" not in (role, previous)
        )
        if previous is not None and not cue_and_term:
            problems.append(f"duplicate term {term!r} in {previous} and {role}")
        seen[key] = role if previous is None else previous + "+" + role
    return problems


class Lexicon:
    """A compiled lexicon for one language; build it with :func:`load_lexicon`."""

    def __init__(self, data: dict[str, Any], source: Path) -> None:
        self.language: str = data["language"]
        self.version: str = data["version"]
        self.unit: str = data["unit"]
        self.source = source
        self.normalise_text = _normaliser(self.language)
        negation = data.get("negation", {})
        self.window: int = negation.get("window", 3)
        word = _word_class()
        self._word = word
        self._units = _LETTER if self.unit == "char" else re.compile(word + "+")
        boundary = re.escape(_BOUNDARY) + (" " if self.language == "th" else "")
        self._boundary = re.compile(f"[{boundary}]")
        self._entries, self._pattern = self._compile(data, word)

    def _compile(self, data: dict[str, Any], word: str) -> tuple[list[_Entry], re.Pattern[str]]:
        entries: dict[str, _Entry] = {}
        for role, term, key in _keyed(data):
            entry = entries.setdefault(key, _Entry(term))
            if role in CATEGORIES:
                entry.category, entry.term = role, term
            entry.before |= role == "negation.before"
            entry.after |= role == "negation.after"
        if self.unit == "char":
            left, right = "", ""
        elif self.language == "ko":
            left, right = f"(?<!{word})", f"{word}*"
        elif self.language == "ar":
            left, right = f"(?<!{word}){_ARABIC_PROCLITIC}", f"(?!{word})"
        else:
            left, right = f"(?<!{word})", f"(?!{word})"
        regexes, paths = [], []
        for number, key in enumerate(entries):
            terminal = f"{right}(?P<t{number}>)"
            if key.startswith("re:"):
                regexes.append(f"(?:{key[3:]}){terminal}")
            else:
                paths.append((_atoms(key, word), terminal))
        pattern = re.compile(left + "(?:" + "|".join([*regexes, _trie(paths)]) + ")")
        by_group = [_Entry("")] * (pattern.groups + 1)
        values = list(entries.values())
        for name, group in pattern.groupindex.items():
            by_group[group] = values[int(name[1:])]
        return by_group, pattern

    def normalise(self, text: str) -> str:
        """NFKC, casefold and the language's character folding (see the module docstring)."""
        return self.normalise_text(text)

    def _scan(self, norm: str) -> list[Match]:
        hits: list[tuple[int, int, _Entry]] = []
        cues: list[tuple[int, int, _Entry]] = []
        entries = self._entries
        for m in self._pattern.finditer(norm):
            entry = entries[m.lastindex or 0]
            if entry.category is not None:
                hits.append((m.start(), m.end(), entry))
            if entry.before or entry.after:
                cues.append((m.start(), m.end(), entry))
        if not cues:
            return [Match(e.category or "", e.term, s, t) for s, t, e in hits]
        return [self._negate(norm, s, t, e, cues) for s, t, e in hits]

    def _negate(
        self, norm: str, start: int, end: int, entry: _Entry, cues: list[tuple[int, int, _Entry]]
    ) -> Match:
        category = entry.category or ""
        for cue_start, cue_end, cue in cues:
            if cue.before and cue_end <= start and self._near(norm[cue_end:start]):
                break
            if cue.after and cue_start >= end and self._near(norm[end:cue_start]):
                break
        else:
            return Match(category, entry.term, start, end)
        return Match(_OPPOSITE[category], entry.term, start, end, negated=True)

    def _near(self, gap: str) -> bool:
        """Whether a cue this far away (``gap`` between them) negates a hit."""
        if self._boundary.search(gap):
            return False
        return len(self._units.findall(gap)) <= self.window

    def count(self, text: str) -> TextCounts:
        """Units and per-category hit counts of one text (negation applied)."""
        norm = self.normalise_text(text)
        counts = dict.fromkeys(CATEGORIES, 0)
        for match in self._scan(norm):
            counts[match.category] += 1
        return TextCounts(len(self._units.findall(norm)), counts)

    def matches(self, text: str) -> list[Match]:
        """Every counted hit, in text order, with spans in the normalised text."""
        return self._scan(self.normalise_text(text))

    def explain(self, text: str) -> dict[str, Any]:
        """JSON-able account of how ``text`` is scored, for audits and debugging."""
        norm = self.normalise_text(text)
        found = self._scan(norm)
        counts = dict.fromkeys(CATEGORIES, 0)
        for match in found:
            counts[match.category] += 1
        return {
            "language": self.language,
            "version": self.version,
            "unit": self.unit,
            "units": len(self._units.findall(norm)),
            "normalised": norm,
            "matches": [
                {
                    "category": m.category,
                    "term": m.term,
                    "start": m.start,
                    "end": m.end,
                    "text": norm[m.start : m.end],
                    "negated": m.negated,
                }
                for m in found
            ],
            "counts": counts,
        }


def _read(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: lexicon file not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path}: cannot read lexicon: {reason}") from None


@functools.cache
def _load(language: str, path: Path) -> Lexicon:
    data = _read(path)
    problems = _problems(data, language)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"{path}: {problems[0]}{more}")
    return Lexicon(data, path)


def load_lexicon(language: str, path: Path | None = None) -> Lexicon:
    """Load and compile the lexicon of ``language``, once per (language, path).

    Args:
        language: ISO 639-1 code, one of :data:`LANGUAGES`.
        path: a lexicon YAML file; default ``data/lexicons/<language>.yaml``.

    Raises:
        ConfigError: unknown language, or a missing or malformed file.
    """
    if path is None:
        if language not in LANGUAGES:
            known = ", ".join(LANGUAGES)
            raise ConfigError(f"unknown lexicon language {language!r}; known: {known}")
        path = _default_dir() / f"{language}.yaml"
    return _load(language, Path(path).resolve())


def check_lexicons(directory: Path | None = None) -> list[str]:
    """Validate every lexicon in ``directory`` (default: the shipped ones).

    Returns:
        Human-readable problems, one per line, each naming its file; empty when all
        16 languages are present and well formed.
    """
    directory = Path(directory) if directory is not None else _default_dir()
    problems = [
        f"{directory / (lang + '.yaml')}: missing lexicon for {name}"
        for lang, name in LANGUAGES.items()
        if not (directory / f"{lang}.yaml").exists()
    ]
    for path in sorted(directory.glob("*.yaml")):
        if path.stem not in LANGUAGES:
            problems.append(f"{path}: unknown language {path.stem!r}")
            continue
        try:
            data = _read(path)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        problems += [f"{path}: {p}" for p in _problems(data, path.stem)]
    return problems
