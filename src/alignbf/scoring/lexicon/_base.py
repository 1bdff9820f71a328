"""Constants and text handling shared by the lexicon modules: categories, languages,
normalisation, word characters and the regex building blocks of terms."""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Callable
from re import _parser as _sre_parser  # type: ignore[attr-defined]
from typing import Any

from alignbf.config.study import load_languages

CATEGORIES: tuple[str, ...] = ("coercive", "protective", "conformity", "individuation")

LANGUAGES: dict[str, str] = {code: entry["name"] for code, entry in load_languages().items()}
"""Code -> name of every language with a lexicon, from ``data/languages.yaml``."""
CHAR_LANGUAGES = frozenset({"ja", "zh", "th"})

_OPPOSITE = dict(coercive="protective", protective="coercive")
_OPPOSITE.update(conformity="individuation", individuation="conformity")
_TOP_KEYS = {"language", "version", "unit", "categories", "negation", "ignore", "senses"}
_SENSE_KEYS = {"term", "when", "window", "category", "unless", "side"}
_NEGATION_KEYS = {"before", "after", "breaks", "window", "comma_breaks"}
_ARABIC_PROCLITIC = "(?:[وف]?(?:بال|كال|لل|ال|[بكل])|[وف])??"
_BOUNDARY = ".!?;:,…\n\u2013\u2014\u3001\u3002\u060c\u061b\u061f\u0964\u0965"
_FOLD = {"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u00b4": "'", "\u2010": "-"}
_LANGUAGE_FOLD: dict[str, dict[str, str]] = {
    "ar": {
        **{chr(c): "" for c in [*range(0x064B, 0x0660), 0x0670, 0x0640]},
        **dict.fromkeys("أإآٱ", "ا"),
    },
    "ru": {"ё": "е"},
    "hi": {"\u0901": "\u0902"},
}
_NON_LETTERS = re.compile(r"[\W_]+")
_LETTER = re.compile(r"[^\W_]")


def _letters(text: str) -> int:
    """Letters and digits in ``text`` (the ``char`` unit)."""
    return len(_NON_LETTERS.sub("", text))


# Word characters: ``\w`` plus the combining marks ``\w`` leaves out in the scripts in use
# (diacritics NFKC leaves uncomposed, Arabic harakat, Devanagari and Thai vowel signs,
# ZWNJ/ZWJ, kana voicing marks). Kept to the BMP so the class compiles to a bitmap; a
# class of every Unicode mark compiles to range lists that are searched at each character.
_WORD = (
    "[\\w\u0300-\u036f\u0483-\u0489\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed"
    "\u0900-\u0903\u093a-\u094f\u0951-\u0957\u0962\u0963\u0981-\u0983\u0e31"
    "\u0e34-\u0e3a\u0e47-\u0e4e\u1ab0-\u1aff\u1dc0-\u1dff\u200c\u200d\u20d0-\u20ff"
    "\u3099\u309a\ufe20-\ufe2f]"
)


def _folder(table: dict[str, str]) -> Callable[[str], str]:
    """Character replacement that costs one scan when nothing needs replacing.

    ``str.translate`` looks every character up in a dict, which is slow for non-ASCII text;
    one substitution per distinct replacement stays in the regex engine.
    """
    pattern = re.compile("[" + "".join(map(re.escape, table)) + "]")
    targets: dict[str, str] = {}
    for char, replacement in table.items():
        targets[replacement] = targets.get(replacement, "") + char
    if any(char in table for replacement in targets for char in replacement):
        raise ValueError("a folding table must not replace a character by another it folds")
    steps = [
        (re.compile("[" + "".join(map(re.escape, chars)) + "]").sub, literal.replace("\\", "\\\\"))
        for literal, chars in targets.items()
    ]

    def fold(text: str) -> str:
        if pattern.search(text) is None:
            return text
        for sub, replacement in steps:
            text = sub(replacement, text)
        return text

    return fold


def _normaliser(language: str) -> Callable[[str], str]:
    fold = _folder({**_FOLD, **_LANGUAGE_FOLD.get(language, {})})
    turkish = _folder({"İ": "i", "I": "ı"})
    nfkc = functools.partial(unicodedata.normalize, "NFKC")
    if language == "tr":
        return lambda text: fold(nfkc(turkish(text)).casefold())

    def normalise(text: str) -> str:
        text = nfkc(text).casefold()
        return text if text.isascii() else fold(text)  # every folded character is non-ASCII

    return normalise


def normalise_regex(source: str, normalise: Callable[[str], str]) -> str:
    """A ``re:`` entry's pattern with each non-ASCII character normalised as text is (the
    syntax of a pattern is ASCII, and left alone): Thai ำ becomes ํา, as in
    every normalised reply, so a pattern written with it can match; a character that
    becomes ASCII is escaped (？ is a literal ?, … three literal dots)."""
    return "".join(
        ch if ch.isascii() or normalise(ch) == ch else re.escape(normalise(ch)) for ch in source
    )


def _expand(term: str) -> list[str]:
    """Every variant of a plain term: ``(a|b|)`` groups are expanded, empty meaning absent."""
    parts = re.split(r"\(([^()]*)\)", term)
    choices = [[p] if i % 2 == 0 else p.split("|") for i, p in enumerate(parts)]
    variants = ("".join(pick) for pick in itertools.product(*choices))
    return list(dict.fromkeys(" ".join(v.split()) for v in variants))


def _atoms(term: str) -> list[str]:
    """Regex fragments of a normalised plain term, one per character-level step."""
    atoms: list[str] = []
    for i, ch in enumerate(term):
        if ch.isspace():
            if atoms and atoms[-1] != r"\s+":
                atoms.append(r"\s+")
        elif ch == "-":
            atoms.append(r"[-\s]?")
        elif ch == "*" and (i + 1 == len(term) or term[i + 1].isspace()):
            atoms.append(_WORD + "*")
        else:
            atoms.append(re.escape(ch))
    return atoms


def _first_chars(pattern: str) -> str | None:
    """The characters a match of ``pattern`` can start with, as a character-class body,
    or None when that is not a short, known set (the pattern can match empty text, starts
    with a class of categories or ranges, or uses a construct this does not read)."""
    try:
        parsed = _sre_parser.parse(pattern)
    except re.error:
        return None
    if parsed.state.flags & (re.IGNORECASE | re.VERBOSE):
        return None
    found, nullable = _first_of(list(parsed))
    if found is None or nullable or not found:
        return None
    return "".join(re.escape(char) for char in sorted(found))


def _first_of(items: list[Any]) -> tuple[set[str] | None, bool]:
    """(first characters, whether the sequence can match empty) of parsed regex items."""
    found: set[str] = set()
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            return found | {chr(arg)}, False
        if name == "IN":
            chars = set()
            for kind, value in arg:
                if str(kind) != "LITERAL":
                    return None, False
                chars.add(chr(value))
            return found | chars, False
        if name in ("ASSERT", "ASSERT_NOT", "AT"):
            continue  # zero-width: the next item consumes the first character
        if name == "SUBPATTERN":
            if arg[1] & (re.IGNORECASE | re.VERBOSE):
                return None, False
            parts, empty = _first_of(list(arg[-1]))
        elif name == "BRANCH":
            parts, empty = set(), False
            for branch in arg[1]:
                sub, sub_empty = _first_of(list(branch))
                if sub is None:
                    return None, False
                parts |= sub
                empty = empty or sub_empty
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            parts, empty = _first_of(list(arg[2]))
            empty = empty or arg[0] == 0
        else:
            return None, False
        if parts is None:
            return None, False
        found |= parts
        if not empty:
            return found, False
    return found, True


def _trie(paths: list[tuple[list[str], str]]) -> str:
    """Alternation over atom paths as a prefix tree; longer paths are tried first.

    Each path ends in its own terminal fragment (empty, or a group that names the term).
    """
    root: dict[str, Any] = {}
    for atoms, terminal in paths:
        node = root
        for atom in atoms:
            node = node.setdefault(atom, {})
        node[""] = terminal

    def emit(node: dict[str, Any]) -> str:
        wild = [k for k in node if k.endswith(("*", "?"))]
        plain = sorted(k for k in node if k and k not in wild)
        alts = [atom + emit(node[atom]) for atom in plain + wild]
        if "" in node:
            alts.append(node[""])
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"

    return emit(root) if root else "(?!)"
