"""One simulation's conversation as the viewer shows it: turns, agents and lexicon hits.

Each reply is cut into segments, plain text and hits: a hit carries its category, the
lexicon term, whether a negation cue turned it over, whether it merely echoes the
agent's instructions (the scoring leaves those out) and whether its channel counts for
the indices. The matcher reports spans in the normalised text; they are mapped back
onto the reply as written, so the page shows the model's own characters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from alignbf.config.prompts import load_prompts
from alignbf.config.study import Study, load_languages
from alignbf.scoring.lexicon import Echo, Lexicon, instruction_echo, load_lexicon

RTL_SCRIPTS = frozenset({"arabic", "hebrew"})
RTL = frozenset(code for code, e in load_languages().items() if e.get("script") in RTL_SCRIPTS)
"""Languages written right to left, from their script in ``data/languages.yaml``."""
_SHORT = {"coercive": "coer", "protective": "prot", "conformity": "conf", "individuation": "indiv"}


@dataclass(frozen=True)
class Segment:
    """A piece of a reply; ``category`` is None for plain text."""

    text: str
    category: str | None = None
    term: str = ""
    negated: bool = False
    echo: bool = False
    counted: bool = True

    @property
    def label(self) -> str:
        """The short mark shown after a hit: category, then ``¬neg`` and ``echo``."""
        short = _SHORT.get(self.category or "", self.category or "")
        return short + " ¬neg" * self.negated + " echo" * self.echo

    @property
    def title(self) -> str:
        """The hit explained in words (a tooltip)."""
        text = f"{self.category} (term “{self.term}”)"
        if self.negated:
            text += f"; negated: counts as {self.category} after a negation cue"
        if self.echo:
            text += "; echo of the agent's instructions: not counted"
        if not self.counted:
            text += "; channel not counted for the indices"
        return text

    @property
    def classes(self) -> str:
        """CSS classes of a hit."""
        marks = (("neg", self.negated), ("echo", self.echo), ("uncounted", not self.counted))
        return " ".join(["hit", self.category or "", *(name for name, on in marks if on)])


@dataclass
class Utterance:
    """One message of one agent in one channel."""

    channel: str
    segments: list[Segment]
    recipient: str | None = None

    @property
    def empty(self) -> bool:
        """True when the agent wrote nothing in this channel."""
        return not any(s.text.strip() for s in self.segments)


@dataclass
class AgentTurn:
    """What one agent wrote in one turn."""

    index: int
    name: str
    aligned: bool
    individuated: bool
    utterances: list[Utterance] = field(default_factory=list)


@dataclass
class Turn:
    """The facility's event and each agent's replies."""

    number: int
    event: str = ""
    agents: list[AgentTurn] = field(default_factory=list)


@dataclass
class Agent:
    """An agent of the simulation with its scores (empty when not scored)."""

    index: int
    name: str
    aligned: bool
    individuated: bool
    scores: dict[str, Any] = field(default_factory=dict)


CHANNEL_ORDER = {"talk": 0, "monologue": 1, "whisper": 2}


class Highlighter:
    """Lexicon hits of replies, per language, with the echo filter the study scores with."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self._lexicons: dict[str, tuple[Lexicon, Echo | None]] = {}
        self._chars: dict[str, dict[str, str]] = {}
        """Per language: each character met so far, normalised on its own."""

    def _lexicon(self, language: str) -> tuple[Lexicon, Echo | None]:
        found = self._lexicons.get(language)
        if found is None:
            lexicon = load_lexicon(language)
            n = self.study.scoring.echo.units(language, lexicon.unit)
            found = self._lexicons[language] = (lexicon, instruction_echo(lexicon, n))
        return found

    def segments(self, text: str, language: str, channel: str) -> list[Segment]:
        """``text`` cut into plain segments and hits."""
        if not text:
            return []
        lexicon, echo = self._lexicon(language)
        found = lexicon.explain(text, echo)["matches"]
        if not found:
            return [Segment(text)]
        to_original = _offset_map(text, lexicon.normalise, self._chars.setdefault(language, {}))
        if to_original is None:
            return [Segment(text)]
        counted = channel in self.study.scoring.hit_channels
        out, at = [], 0
        for m in found:
            start, end = to_original[m["start"]], to_original[m["end"]]
            if start < at or end <= start:
                continue
            if start > at:
                out.append(Segment(text[at:start]))
            out.append(
                Segment(text[start:end], m["category"], m["term"], m["negated"], m["echo"], counted)
            )
            at = end
        if at < len(text):
            out.append(Segment(text[at:]))
        return out


def _offset_map(
    text: str, normalise: Callable[[str], str], chars: dict[str, str]
) -> list[int] | None:
    """For each offset of the normalised text (and its end), the offset in ``text``.

    Characters are normalised one at a time (``chars`` remembers them), which agrees
    with normalising the whole text unless composition joins neighbours; then None (no
    highlighting). Most text keeps every character in place: the identity map.
    """
    norm = normalise(text)
    pieces = []
    for ch in text:
        piece = chars.get(ch)
        if piece is None:
            piece = chars[ch] = normalise(ch)
        pieces.append(piece)
    if "".join(pieces) != norm:
        return None
    if len(norm) == len(text):
        return list(range(len(text) + 1))
    out = [i for i, piece in enumerate(pieces) for _ in piece]
    out.append(len(text))
    return out


def agents_of(spec: dict[str, Any], scores: dict[int, dict[str, Any]]) -> list[Agent]:
    """The simulation's agents by persona name, with their flags and scores."""
    personas = load_prompts(spec["language"]).personas
    return [
        Agent(i, personas[i].name, bool(a), bool(ind), scores.get(i, {}))
        for i, (a, ind) in enumerate(zip(spec["aligned"], spec["individuated"], strict=True))
    ]


def build_turns(
    rows: Iterable[tuple[int, int, str, int | None, str]],
    agents: list[Agent],
    language: str,
    highlighter: Highlighter,
) -> list[Turn]:
    """Group stored messages into turns: the event, then each agent's channels."""
    turns: dict[int, Turn] = {}
    per_agent: dict[tuple[int, int], AgentTurn] = {}
    for turn, agent, channel, recipient, text in rows:
        current = turns.setdefault(turn, Turn(turn))
        if agent < 0:
            current.event = (current.event + "\n" + text).strip()
            continue
        key = (turn, agent)
        entry = per_agent.get(key)
        if entry is None:
            who = agents[agent]
            entry = per_agent[key] = AgentTurn(agent, who.name, who.aligned, who.individuated)
            current.agents.append(entry)
        to = (
            agents[recipient].name
            if recipient is not None and 0 <= recipient < len(agents)
            else None
        )
        utterance = Utterance(channel, highlighter.segments(text, language, channel), to)
        entry.utterances.append(utterance)
    for t in turns.values():
        t.agents.sort(key=lambda a: a.index)
        for a in t.agents:
            a.utterances.sort(key=lambda u: CHANNEL_ORDER.get(u.channel, 9))
    return [turns[k] for k in sorted(turns)]


def excerpt(text: str, limit: int = 160) -> str:
    """The first ``limit`` characters of a reply, cut at a word where possible."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut) + "…"
