"""The echo filter: hits that lie inside a reply's repetition of its instruction texts.

:class:`Echo` indexes the runs of ``n`` units of a language's instruction texts;
:class:`EchoCheck` (a base of :class:`~alignbf.scoring.lexicon.Lexicon`) tells which hits of
a reply lie wholly inside such a run. Units are words, or letters for ``char`` lexicons.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from alignbf.scoring.lexicon._base import _LETTER, _NON_LETTERS, _WORD, _letters

_NEVER, _ALWAYS, _CONTEXT = 0, 1, 2
"""What a hit's token alone says of an echo: it lies in no n-gram, it is a whole n-gram of
the instructions, or only the units around it can tell."""

_Hit = tuple[int, str, bool, int, int, int]
"""(index of the marked token, category, negated, start, end, cue): start and end in words
for ``word`` lexicons, in characters of the normalised text for ``char`` lexicons; ``cue``
is the position of the negating cue in the text's list of cues, or -1."""
_Cue = tuple[int, int, int, bool, bool, int]
"""A negation cue in a text: (start, end, scope, before, after, index of the marked token),
start and end like a hit's."""

_NEXT_WORD = re.compile(f"[^{_WORD[1:]}*+({_WORD}+)")
"""The first word at or after a position (reversed text: the last word before it)."""
_NEXT_LETTER = re.compile(r"[\W_]*+([^\W_])")
"""The first letter at or after a position."""


@dataclass(frozen=True)
class Echo:
    """The n-grams of the instruction texts an agent may merely repeat (see
    :meth:`EchoCheck.echo`).

    A hit is an echo when every unit of it lies inside some run of ``n`` consecutive units
    of the reply that also occurs, in the same order, in one of the instruction texts.
    Each n-gram is its units joined by ``sep`` (nothing for one-letter units).
    """

    n: int
    grams: frozenset[str]
    sep: str = "\x1f"
    runs: tuple[frozenset[str], ...] = field(default=(), compare=False, repr=False)
    """Every run of 1, 2, ... ``n - 1`` units inside one of the n-grams, joined like them
    (``runs[m - 1]`` holds the runs of ``m``): a hit whose units are not among them lies
    inside no n-gram. Empty (as without :meth:`of`), every hit is checked in full."""
    verdicts: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    """What each hit token seen so far says alone (``_NEVER``, ``_ALWAYS``, ``_CONTEXT``)."""

    @classmethod
    def of(cls, n: int, grams: frozenset[str], sep: str = "\x1f") -> Echo:
        """The index of ``grams`` with its :attr:`runs`."""
        split = [gram.split(sep) if sep else list(gram) for gram in grams]
        runs = tuple(
            frozenset(sep.join(units[i : i + m]) for units in split for i in range(n - m + 1))
            for m in range(1, n)
        )
        return cls(n, grams, sep, runs)


class EchoCheck:
    """The echo filter's part of a lexicon (its unit, normaliser and marked tokens)."""

    unit: str
    _word: re.Pattern[str]
    _mark: re.Pattern[str]
    _loose_mark: re.Pattern[str]
    _token_units: bool
    _pieces: dict[str, tuple[str, ...]]
    _normalise: Callable[[str], str]

    @property
    def _sep(self) -> str:
        return "" if self.unit == "char" else "\x1f"

    def _unit_spans(self, norm: str) -> list[tuple[int, int]]:
        """Character spans of the units of a normalised text (words, or letters)."""
        unit = _LETTER if self.unit == "char" else self._word
        return [m.span() for m in unit.finditer(norm)]

    def _grams(self, norm: str, spans: list[tuple[int, int]], n: int) -> list[str]:
        """The n-gram key starting at each unit (units joined by :attr:`Echo.sep`)."""
        units = [norm[a:b] for a, b in spans]
        sep = self._sep
        return [sep.join(units[i : i + n]) for i in range(len(units) - n + 1)]

    def echo(self, texts: Iterable[str], n: int) -> Echo:
        """An echo index of ``texts``: every run of ``n`` units, normalised like replies."""
        grams: set[str] = set()
        for text in texts:
            for part in re.split(r"\{[a-z]+\}", text):
                norm = self._normalise(part)
                grams.update(self._grams(norm, self._unit_spans(norm), n))
        return Echo.of(n, frozenset(grams), self._sep)

    def _echoed(self, norm: str, spans: list[tuple[int, int]], echo: Echo) -> list[bool]:
        """For each hit span, whether it lies wholly inside repeated instruction text."""
        units = self._unit_spans(norm)
        grams = self._grams(norm, units, echo.n)
        starts = [a for a, _ in units]
        out = []
        for start, end in spans:
            first = bisect.bisect_right(starts, start) - 1
            last = bisect.bisect_left(starts, end) - 1
            if first < 0 or last < first:
                out.append(False)
                continue
            covered: set[int] = set()
            for k in range(max(0, last - echo.n + 1), min(first, len(grams) - 1) + 1):
                if grams[k] in echo.grams:
                    covered.update(range(k, k + echo.n))
            out.append(all(u in covered for u in range(first, last + 1)))
        return out

    def _echoed_units(self, norm: str, ranges: list[tuple[int, int]], echo: Echo) -> list[bool]:
        """:meth:`_echoed` for hits given by their positions from ``_resolve``: only
        the n-grams around each hit are built.

        Every n-gram that starts at most ``n`` units before a hit's end and at or before its
        start holds the whole hit, so one such n-gram among the instruction n-grams is
        enough."""
        n, grams, out = echo.n, echo.grams, []
        if self.unit == "word":
            units = self._word.findall(norm)
            for start, end in ranges:
                out.append(
                    end > start
                    and any(
                        "\x1f".join(units[k : k + n]) in grams
                        for k in range(max(0, end - n), min(start, len(units) - n) + 1)
                    )
                )
            return out
        # A letter is one character, so the n-gram at letter k is a slice of all of them.
        letters = _NON_LETTERS.sub("", norm)
        size = len(letters)
        for start, end in ranges:
            first = _letters(norm[:start])
            last = first + _letters(norm[start:end])
            out.append(
                last > first
                and any(
                    letters[k : k + n] in grams
                    for k in range(max(0, last - n), min(first, size - n) + 1)
                )
            )
        return out

    def _may_echo(
        self, norm: str, marked: list[tuple[int, str]], hits: list[_Hit], echo: Echo
    ) -> bool:
        """Whether some hit may be an echo (``False`` only when none is).

        A hit whose units are no run of an n-gram is none; a hit of ``n`` units is one
        exactly when it is an n-gram. A shorter hit lies inside an n-gram only together
        with the unit just before it or just after it, so one of those runs must be a run
        of an n-gram too. What the token alone says is memoised in ``echo.verdicts``.
        Each place where the hit's token occurs in the text is tried; the hit is at one of
        them. The units of a hit are those of its token, except in a word-lexicon text with
        a word that starts with a combining mark (the marked tokens leave such marks out):
        there every hit may be one.
        """
        runs = echo.runs
        if not runs or not self._token_units:
            return True
        if (
            self.unit == "word"
            and not norm.isascii()
            and self._mark.search(norm)
            and (self._mark.match(norm) or self._loose_mark.search(norm))
        ):
            return True
        verdicts, pieces, piece, sep = echo.verdicts, self._pieces, self._piece, echo.sep
        after = _NEXT_LETTER.match if self.unit == "char" else _NEXT_WORD.match
        reverse = ""
        for k, *_ in hits:
            token = marked[k][1]
            verdict = verdicts.get(token)
            if verdict is None:
                verdict = self._verdict(token, echo)
            if verdict == _NEVER:
                continue
            if verdict == _ALWAYS:
                return True
            units = pieces.get(token) or piece(token)
            longer = runs[len(units)] if len(units) < echo.n - 1 else echo.grams
            at = norm.find(token)
            while at >= 0:
                found = after(norm, at + len(token))
                if found and sep.join((*units, found.group(1))) in longer:
                    return True
                reverse = reverse or norm[::-1]
                found = after(reverse, len(norm) - at)
                if found and sep.join((found.group(1)[::-1], *units)) in longer:
                    return True
                at = norm.find(token, at + 1)
        return False

    def _verdict(self, token: str, echo: Echo) -> int:
        """What a hit token says alone of an echo (see :data:`_NEVER`), memoised in ``echo``."""
        units = self._pieces.get(token) or self._piece(token)
        size, joined = len(units), echo.sep.join(units)
        if not 0 < size <= echo.n:
            verdict = _NEVER
        elif size == echo.n:
            verdict = _ALWAYS if joined in echo.grams else _NEVER
        else:  # the runs one unit longer are indexed (or are the n-grams)
            verdict = _CONTEXT if joined in echo.runs[size - 1] else _NEVER
        if len(echo.verdicts) > 100_000:
            echo.verdicts.clear()
        echo.verdicts[token] = verdict
        return verdict

    def _piece(self, token: str) -> tuple[str, ...]:
        """The units of a token, memoised per lexicon."""
        units = tuple((_LETTER if self.unit == "char" else self._word).findall(token))
        if len(self._pieces) > 100_000:
            self._pieces.clear()
        self._pieces[token] = units
        return units
