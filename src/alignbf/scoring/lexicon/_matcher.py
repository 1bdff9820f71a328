"""The compiled lexicon of one language: tokens, senses, negation and echoes."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from alignbf.errors import ConfigError
from alignbf.scoring.lexicon._base import (
    _ARABIC_PROCLITIC,
    _BOUNDARY,
    _OPPOSITE,
    _WORD,
    CATEGORIES,
    _atoms,
    _expand,
    _first_chars,
    _letters,
    _normaliser,
    _trie,
    normalise_regex,
)
from alignbf.scoring.lexicon._echo import Echo, EchoCheck, _Cue, _Hit
from alignbf.scoring.lexicon._rules import _keyed


@dataclass(frozen=True)
class Match:
    """One counted hit; ``start``/``end`` index the normalised text."""

    category: str
    term: str
    start: int
    end: int
    negated: bool = False
    cue: tuple[int, int] | None = None
    """Span of the negation cue that negated the hit (when ``negated``)."""


@dataclass(frozen=True)
class TextCounts:
    """Units of a text, its hit count for every category and the hits left out as echoes."""

    units: int
    counts: dict[str, int]
    echoed: int = 0


@dataclass
class _Entry:
    """One alternative of the combined pattern: a term, a cue, or both."""

    term: str
    category: str | None = None
    before: bool = False
    after: bool = False
    stop: bool = False
    fixed: bool = False
    rules: list[_Sense] | None = None
    """The sense rules of a category term."""


@dataclass(frozen=True)
class _Sense:
    """A compiled sense rule: contexts near the term re-assign its category."""

    context: re.Pattern[str]
    window: int
    category: str | None
    unless: bool
    side: str = "both"


_SLOT = {category: i for i, category in enumerate(CATEGORIES)}
"""Position of each category in :meth:`Lexicon.tally`'s counts."""


class _Token(NamedTuple):
    """What the lexicon knows about one non-word token (``entry`` only for category hits)."""

    entry: _Entry | None
    units: int
    breaks: bool
    before: bool
    after: bool


_BOUNDARY_TOKEN = _Token(None, 0, True, False, False)
"""Every clause-boundary character."""


def _guarded(regex: str, end: str) -> str:
    """A ``re:`` term as an alternative of the combined pattern, behind a look-ahead for the
    characters it can start with when those are known: the alternative is then tried only
    where it can match, and matches the same text."""
    first = _first_chars(regex)
    guard = f"(?=[{first}])" if first else ""
    return f"{guard}(?:{regex}){end}"


class Lexicon(EchoCheck):
    """A compiled lexicon for one language; build it with :func:`load_lexicon`.

    One regular expression cuts a text into marked tokens (terms, cues, breaks, ignore
    phrases, clause-boundary characters) and, for ``word`` lexicons, plain words. Each
    distinct token is identified once and memoised; counting and negation then work on
    the token list.
    """

    def __init__(self, data: dict[str, Any], source: Path) -> None:
        self.language: str = data["language"]
        self.version: str = data["version"]
        self.unit: str = data["unit"]
        self.source = source
        self.window: int = data.get("negation", {}).get("window", 3)
        self._normalise = _normaliser(self.language)
        word = self._word = re.compile(_WORD + "+")
        self._units = _letters if self.unit == "char" else lambda text: len(word.findall(text))
        boundaries = set(_BOUNDARY + (" " if self.language == "th" else ""))
        if not data.get("negation", {}).get("comma_breaks", True):
            boundaries -= set(",\u060c\u3001")
        self._boundaries = frozenset(boundaries)
        entries: dict[str, _Entry] = {}
        for role, term, key in _keyed(data):
            entry = entries.setdefault(key, _Entry(term))
            if role in CATEGORIES:
                entry.category, entry.term, entry.fixed = role, term, term.endswith("!")
            entry.before |= role == "negation.before"
            entry.after |= role == "negation.after"
            entry.stop |= role == "negation.breaks"
        self._entries = entries
        self._ordered = list(entries.values())
        self._senses = self._compile_senses(data.get("senses", []))
        for entry in self._ordered:
            if entry.category:
                entry.rules = self._senses.get(entry.term)
        self._known: dict[str, _Token] = {}
        self._pieces: dict[str, tuple[str, ...]] = {}
        # A word starting with a combining mark, which the tokens leave out of their words;
        # a term that can match nothing would be a token with no units.
        marks = _WORD[len("[\\w") : -1]
        self._mark = re.compile(f"[{marks}]")
        self._loose_mark = re.compile(f"[^\\w{marks}][{marks}]")
        self._token_units = not any(
            re.match(key[3:], "") for key in entries if key.startswith("re:")
        )
        self._named: re.Pattern[str] | None = None
        self._exact = {
            key: entry
            for key, entry in entries.items()
            if not key.startswith("re:") and "*" not in key and "-" not in key
        }
        boundary = re.escape("".join(sorted(self._boundaries)))
        # Clause bounds: the last boundary character before a position, the first after it.
        self._clause_start = re.compile(f".*[{boundary}]", re.DOTALL)
        self._clause_end = re.compile(f"[{boundary}]")
        body = self._body(list(entries))
        self._seek: re.Pattern[str] | None = None
        if self.unit == "char":
            self._pattern = re.compile(f"{body}|[{boundary}]")
            self._seek_source = ""
        else:
            # Plain words are tokens too, so units come from the same pass; skipping spaces
            # inside the match spares a failed term attempt at every space.
            skip = f"[^\\w{boundary}]*+"
            self._pattern = re.compile(f"{skip}(?:({body}|[{boundary}])|{_WORD}++)")
            # The same tokens, one match per marked token: plain words are passed over
            # lazily, each only after no marked token matches where it starts.
            self._seek_source = f"(?:{skip}{_WORD}++)*?{skip}({body}|[{boundary}])"

    def _compile_senses(self, rules: list[dict[str, Any]]) -> dict[str, list[_Sense]]:
        """Sense rules by the term (as written) they re-assign."""
        senses: dict[str, list[_Sense]] = {}
        contexts: dict[tuple[str, ...], re.Pattern[str]] = {}  # rules often share a context
        for rule in rules:
            keys = [
                key
                for phrase in rule["when"]
                for key in (
                    ["re:" + normalise_regex(phrase[3:], self._normalise)]
                    if phrase.startswith("re:")
                    else _expand(self._normalise(phrase.removesuffix("!")))
                )
            ]
            start = "" if self.unit == "char" else f"(?<!{_WORD})"
            category = None if rule["category"] == "none" else rule["category"]
            context = contexts.get(tuple(keys))
            if context is None:
                context = contexts[tuple(keys)] = re.compile(start + self._body(keys))
            sense = _Sense(
                context,
                rule.get("window", 4),
                category,
                rule.get("unless", False),
                rule.get("side", "both"),
            )
            senses.setdefault(rule["term"], []).append(sense)
        return senses

    def _gap(self, norm: str, start: int, end: int) -> int:
        """Units in ``norm[start:end]``, between a context phrase and a term (characters for
        ``char`` lexicons)."""
        return end - start if self.unit == "char" else len(self._word.findall(norm, start, end))

    def _clause(self, norm: str, start: int, end: int) -> tuple[int, int]:
        """Bounds of the clause (between boundary characters) around ``norm[start:end]``."""
        before = self._clause_start.match(norm, 0, start)
        after = self._clause_end.search(norm, end)
        return (before.end() if before else 0), (after.start() if after else len(norm))

    def _sense(
        self, norm: str, span: tuple[int, int], rules: list[_Sense], category: str
    ) -> str | None:
        """The category a hit counts for once its sense rules are applied."""
        start, end = span
        left, right = self._clause(norm, start, end)
        gap = self._gap
        for rule in rules:
            near = rule.side != "after" and any(
                gap(norm, m.end(), start) <= rule.window
                for m in rule.context.finditer(norm, left, start)
                if m.end() <= start
            )
            near = near or (
                rule.side != "before"
                and any(
                    gap(norm, end, m.start()) <= rule.window
                    for m in rule.context.finditer(norm, end, right)
                )
            )
            if near != rule.unless:
                return rule.category
        return category

    def _body(self, keys: list[str], named: bool = False) -> str:
        """Pattern matching any of ``keys`` with this language's affix and boundary rules.

        With ``named``, the i-th key ends in an empty group ``t<i>`` that identifies it.
        """
        terminals = [f"(?P<t{i}>)" if named else "" for i in range(len(keys))]
        pairs = list(zip(keys, terminals, strict=True))
        regexes = [_guarded(key[3:], end) for key, end in pairs if key.startswith("re:")]
        paths = [(_atoms(key), end) for key, end in pairs if not key.startswith("re:")]
        # One class test rejects most positions before the wide first level of the trie.
        first = "".join(sorted({re.escape(key[0]) for key in keys if not key.startswith("re:")}))
        trie = f"(?=[{first}]){_trie(paths)}" if first else "(?!)"
        body = "(?:" + "|".join([trie, *regexes]) + ")"
        if self.unit == "char":
            return body
        if self.language == "ko":
            return body + _WORD + "*"
        prefix = _ARABIC_PROCLITIC if self.language == "ar" else ""
        return f"{prefix}{body}(?!{_WORD})"

    def prepare(self) -> Lexicon:
        """Compile now the patterns counting would compile on first need (identifying a
        token, placing sense-rule terms), so that forked workers inherit them."""
        if self._named is None:
            self._named = re.compile(self._body(list(self._entries), named=True))
        if self._seek is None and self._seek_source:
            self._seek = re.compile(self._seek_source)
        return self

    def normalise(self, text: str) -> str:
        """NFKC, casefold and the language's character folding (see the module docstring)."""
        return self._normalise(text)

    def _identify(self, token: str) -> _Entry:
        """The entry that produced a token: the one the combined pattern's choice ends in."""
        entry = self._exact.get(token)
        if entry is not None:
            return entry
        if self._named is None:
            self._named = re.compile(self._body(list(self._entries), named=True))
        found = self._named.fullmatch(token)
        if found is None or found.lastgroup is None:
            raise ConfigError(
                f"{self.source}: {token!r} matched in context but no term matches it alone;"
                " look-arounds reaching outside a re: term must be negative"
            )
        return self._ordered[int(found.lastgroup[1:])]

    def _learn(self, token: str) -> _Token:
        """Role, units and scope break of a non-word token, memoised per lexicon."""
        if token in self._boundaries:
            known = _BOUNDARY_TOKEN
        else:
            entry = self._identify(token)
            units = self._units(token)
            breaks = entry.stop and not (entry.before or entry.after)
            hit = entry if entry.category else None
            known = _Token(hit, units, breaks, entry.before, entry.after)
        if len(self._known) > 100_000:
            self._known.clear()
        self._known[token] = known
        return known

    def _tokens(self, norm: str) -> tuple[int, list[tuple[int, str]]]:
        """Units of a text outside marked tokens, and the marked tokens (terms, cues, boundaries).

        For ``word`` lexicons the k-th marked token comes as (i, text) with ``i - k`` plain
        words before it; for ``char`` lexicons as (offset, text), all letters counted at once.
        """
        if self.unit == "word":
            tokens = self._pattern.findall(norm)
            marked = [(i, t) for i, t in enumerate(tokens) if t]
            return len(tokens) - len(marked), marked
        return _letters(norm), [(m.start(), m.group()) for m in self._pattern.finditer(norm)]

    def _spans(
        self, norm: str, marked: list[tuple[int, str]], upto: int | None = None
    ) -> list[tuple[int, int]]:
        """Spans of the marked tokens of :meth:`_tokens` (those up to index ``upto``)."""
        if self.unit == "char":
            return [(offset, offset + len(text)) for offset, text in marked]
        if self._seek is None:
            self._seek = re.compile(self._seek_source)
        seek, spans, pos = self._seek.match, [], 0
        for _, text in marked if upto is None else marked[: upto + 1]:
            found = seek(norm, pos)
            if found is None or found.group(1) != text:
                return [m.span(1) for m in self._pattern.finditer(norm) if m.group(1)]
            spans.append(found.span(1))
            pos = found.end()
        return spans

    def _resolve(
        self, plain: int, marked: list[tuple[int, str]], norm: str
    ) -> tuple[int, list[_Hit], list[_Cue]]:
        """Units of a text, its hits as (marked index, category, negated, start, end, cue)
        and its negation cues (``cue`` indexes them, -1 when the hit is not negated).

        Distances are in words, or in characters for ``char`` lexicons; a break starts a new
        scope. Sense rules re-assign hits first; then each cue negates the nearest hit in its
        scope at most ``window`` away that is not of the cue's own category.
        """
        known, learn = self._known, self._learn
        offset = scope = 0
        hits: list[tuple[int, _Entry, int, int, int]] = []
        cues: list[_Cue] = []
        words = self.unit == "word"
        sensing = False
        for k, (index, text) in enumerate(marked):
            token = known.get(text) or learn(text)
            if token is _BOUNDARY_TOKEN:
                scope += 1
                continue
            entry, units, breaks, before, after = token
            if words:
                start = index - k + offset
                offset += units
                end = start + units
            else:
                start, end = index, index + len(text)
            if breaks:
                scope += 1
            elif before or after:
                cues.append((start, end, scope, before, after, k))
            if entry is not None:
                hits.append((k, entry, start, end, scope))
                if entry.rules:
                    sensing = True
        if not hits:
            return plain + offset, [], cues
        if not cues and not sensing:
            plainly = [(k, e.category or "", False, s, x, -1) for k, e, s, x, _ in hits]
            return plain + offset, plainly, cues
        categories: list[str | None] = [entry.category for _, entry, *_ in hits]
        if sensing:
            last = max(k for k, entry, *_ in hits if entry.rules)
            spans = self._spans(norm, marked, last)
            for i, (k, entry, *_) in enumerate(hits):
                if entry.rules:
                    categories[i] = self._sense(norm, spans[k], entry.rules, entry.category or "")
        negated = [-1] * len(hits)
        window = self.window
        sensed = {k: categories[i] for i, (k, *_) in enumerate(hits)}
        for c, (cue_start, cue_end, cue_scope, before, after, cue_k) in enumerate(cues):
            own = sensed.get(cue_k)
            best, nearest = -1, window + 1
            for i, (_, entry, start, end, scope) in enumerate(hits):
                if scope != cue_scope or entry.fixed or categories[i] in (None, own):
                    continue
                gap = start - cue_end if before and start >= cue_end else window + 1
                if after and cue_start >= end:
                    gap = min(gap, cue_start - end)
                if gap < nearest:
                    best, nearest = i, gap
            # A second cue of the same negation ("べきでは" + "ありません") finds the hit the
            # first one negated: it is spent, and reaches no term further away.
            if best >= 0 and negated[best] < 0:
                negated[best] = c
        resolved = [
            (k, category, cue >= 0, start, end, cue)
            for (k, _, start, end, _), category, cue in zip(hits, categories, negated, strict=True)
            if category is not None
        ]
        return plain + offset, resolved, cues

    def tally(self, text: str, echo: Echo | None = None) -> tuple[int, int, int, int, int, int]:
        """:meth:`count` as a plain tuple: units, the hits of each category in
        :data:`CATEGORIES` order, and the hits left out as echoes."""
        norm = self._normalise(text)
        plain, marked = self._tokens(norm)
        units, hits, cues = self._resolve(plain, marked, norm)
        if not hits:
            return units, 0, 0, 0, 0, 0
        echoed = 0
        if echo is not None and self._may_echo(norm, marked, hits, echo):
            flags = _echo_flags(
                lambda ranges: self._echoed_units(norm, ranges, echo),
                [(start, end) for _, _, _, start, end, _ in hits],
                [cues[cue][:2] if cue >= 0 else None for *_, cue in hits],
            )
            echoed = sum(flags)
            if echoed:
                hits = [hit for hit, flag in zip(hits, flags, strict=True) if not flag]
        counts = [0] * len(CATEGORIES)
        for _, category, negated, *_ in hits:
            counts[_SLOT[_OPPOSITE[category] if negated else category]] += 1
        return units, counts[0], counts[1], counts[2], counts[3], echoed

    def count(self, text: str, echo: Echo | None = None) -> TextCounts:
        """Units and per-category hit counts of one text (senses and negation applied).

        With ``echo``, hits inside spans that repeat the indexed texts are left out and
        counted under ``echoed``.
        """
        units, *hits, echoed = self.tally(text, echo)
        return TextCounts(units, dict(zip(CATEGORIES, hits, strict=True)), echoed)

    def matches(self, text: str) -> list[Match]:
        """Every counted hit, in text order, with spans in the normalised text."""
        return self._matches(self._normalise(text))[1]

    def _matches(self, norm: str) -> tuple[int, list[Match]]:
        plain, marked = self._tokens(norm)
        spans = self._spans(norm, marked)
        units, hits, cues = self._resolve(plain, marked, norm)
        matches = []
        for k, category, negated, _, _, cue in hits:
            token = marked[k][1]
            term = (self._known.get(token) or self._learn(token)).entry
            counted = _OPPOSITE[category] if negated else category
            cue_span = spans[cues[cue][5]] if negated else None
            matches.append(Match(counted, term.term if term else "", *spans[k], negated, cue_span))
        return units, matches

    def explain(self, text: str, echo: Echo | None = None) -> dict[str, Any]:
        """JSON-able account of how ``text`` is scored, for audits and debugging.

        With ``echo``, hits inside repeated instruction text are listed with ``echo: true``
        and left out of ``counts``.
        """
        norm = self._normalise(text)
        units, found = self._matches(norm)
        flags = [False] * len(found)
        if echo is not None:
            flags = _echo_flags(
                lambda spans: self._echoed(norm, spans, echo),
                [(m.start, m.end) for m in found],
                [m.cue for m in found],
            )
        counts = dict.fromkeys(CATEGORIES, 0)
        for match, echoed in zip(found, flags, strict=True):
            if not echoed:
                counts[match.category] += 1
        return {
            "language": self.language,
            "version": self.version,
            "unit": self.unit,
            "units": units,
            "normalised": norm,
            "matches": [
                {
                    "category": m.category,
                    "term": m.term,
                    "start": m.start,
                    "end": m.end,
                    "text": norm[m.start : m.end],
                    "negated": m.negated,
                    "negated_by": norm[m.cue[0] : m.cue[1]] if m.cue else None,
                    "echo": echoed,
                }
                for m, echoed in zip(found, flags, strict=True)
            ],
            "counts": counts,
        }


def _echo_flags(
    echoed: Callable[[list[tuple[int, int]]], list[bool]],
    spans: list[tuple[int, int]],
    cues: list[tuple[int, int] | None],
) -> list[bool]:
    """Which hits are echoes, given ``echoed`` (the flags of a list of spans), the hits'
    spans and the span of each hit's negation cue (``None`` when not negated): a negated
    hit is an echo only when its cue is one too, since an agent that negates an
    instruction's words says something new ("I cannot accept Kato's eviction" against the
    event's "accept Kato's eviction")."""
    negated = [(i, cue) for i, cue in enumerate(cues) if cue is not None]
    flags = echoed(spans + [cue for _, cue in negated])
    out = flags[: len(spans)]
    for j, (i, _) in enumerate(negated):
        out[i] = out[i] and flags[len(spans) + j]
    return out
