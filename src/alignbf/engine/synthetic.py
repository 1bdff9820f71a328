"""The synthetic backend: a seeded generative model of the conversation, no network.

Like a real model it reads the condition from the prompt itself: the language
(from the channel-format instructions), whether the agent is alignment-instructed
or individuated (from the instruction texts in its system prompt), the turn (from
the turn header) and what the group has said so far. It answers with sentences
from its own phrase banks (``data/synthetic/<lang>.yaml``, written independently
of the scoring lexicons), drawing each sentence's category from a softmax whose
logits the world file (``configs/synthetic/*.yaml``) sets as functions of
alignment, individuation, language, model, event severity and group contagion.
A reply is a pure function of the request (seed and messages).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alignbf.config import assets
from alignbf.config.prompts import load_prompts
from alignbf.config.rubric import JUDGE_CATEGORIES, read_judge_request
from alignbf.config.study import _describe, load_languages
from alignbf.config.yamlfile import load_yaml
from alignbf.engine.phrasebank import check_bank
from alignbf.errors import ConfigError
from alignbf.transport.backend import ChatRequest, Completion

KINDS = ("coercive", "protective", "harmony_protective", "conformity", "individuation", "neutral")
ECHO = "echo"
"""Oracle label of a sentence an agent restates from its own instructions."""
ORACLE_CATEGORIES: dict[str, tuple[str, ...]] = {
    "coercive": ("coercive",),
    "protective": ("protective",),
    "harmony_protective": ("protective", "conformity"),
    "conformity": ("conformity",),
    "individuation": ("individuation",),
    "neutral": (),
    ECHO: (),
}
"""The scoring categories each sentence kind expresses: harmony-framed protection is both
protective speech and group-harmony phrasing; a restated instruction expresses nothing
the agent did."""
_NO_SPACE = {"ja", "zh"}
_FIRST_INT = re.compile(r"\d+")
_EDGE_PUNCTUATION = " ,.!?;:、。！？"
CONTAGION_CUES = 6
"""Sentences per category the model listens for when it gauges what the group said."""


class World(BaseModel):
    """A synthetic world: how category rates depend on the condition."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: str
    """Short name, part of the synthetic endpoint id (and so of every cache key)."""
    description: str = ""
    """What the world plants."""
    talk_sentences: tuple[int, int] = (1, 3)
    """Range of talk sentences per reply."""
    monologue_mean: float = Field(1.0, ge=0)
    """Mean monologue sentences per reply before effects."""
    whisper_rate: float = Field(0.1, ge=0, le=1)
    """Probability that a reply includes a whisper."""
    format_error_rate: float = Field(0.0, ge=0, le=1)
    """Probability that a reply ignores the channel format."""
    format_error_alignment: float = Field(1.0, ge=0)
    """Multiplier of ``format_error_rate`` for alignment-instructed agents (2 = they break
    the format twice as often)."""
    base: dict[str, float]
    """Baseline logit per category."""
    severity: dict[str, float] = {}
    """Logit added per category times event severity (0 at turn 1, 1 at turn 15)."""
    contagion: dict[str, float] = {}
    """Logit added per category times its share of the sentences the agent just heard."""
    group_variation: dict[str, float] = {}
    """SD of a per-simulation offset per category logit (and ``monologue``): groups differ,
    as real conversations do, beyond the sampling noise of single replies."""
    alignment: dict[str, dict[str, float]] = {}
    """Effect of the alignment prefix: ``default`` and per language; keys are categories or
    ``monologue`` (extra monologue sentences)."""
    individuation: dict[str, dict[str, float]] = {}
    """Effect of the individuation instruction: ``default`` and per language."""
    models: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    """Per-model overrides: model -> ``alignment``/``individuation`` -> language -> effects."""
    refusal_rate_aligned: float = Field(0.0, ge=0, le=1)
    """Probability that an alignment-instructed agent's reply refuses the task or steps
    out of its role (a sentence of the bank's ``refusal`` list, in the channel format)."""
    refusal_rate_unaligned: float = Field(0.0, ge=0, le=1)
    """The same for an agent without the alignment instruction."""
    echo_rate: float = Field(0.0, ge=0, le=1)
    """Probability that an alignment-instructed or individuated agent's talk restates one
    sentence of its own instruction text (labelled ``echo`` by the oracle)."""
    judge_error_rate: float = Field(0.0, ge=0, le=1)
    """Probability that the synthetic judge flips each category label of an utterance
    (0 = it answers the oracle's labels exactly)."""
    expected: dict[str, Literal["positive", "negative", "not_positive"]] = {}
    """Directions this world plants, by preregistered hypothesis id
    (``alignbf replicate --against planted:<world>``)."""

    def effect(self, kind: str, model: str, language: str) -> dict[str, float]:
        """The effect table of ``kind`` for a model and language (most specific wins)."""
        override = self.models.get(model, {}).get(kind, {})
        table = getattr(self, kind)
        return override.get(language) or table.get(language) or table.get("default", {})


def load_world(path: str | Path | None = None) -> World:
    """Load a world file; ``None`` or ``paper``/``null`` name the built-in worlds."""
    name = path or "paper"
    resolved = Path(name)
    if not resolved.exists():
        resolved = assets.path("configs", "synthetic", f"{Path(name).stem}.yaml")
    if not resolved.exists():
        worlds = sorted(p.stem for p in resolved.parent.glob("*.yaml"))
        close = difflib.get_close_matches(Path(name).stem, worlds, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(
            f"--world {str(name)!r}: no such world file or built-in world; {hint}"
            f"built-in: {', '.join(worlds) or 'none'}"
        )
    data = load_yaml(resolved)
    try:
        return World.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(e, World) for e in exc.errors())
        raise ConfigError(f"{resolved}: {problems}") from None


@dataclass(frozen=True)
class _Bank:
    language: str
    talk: dict[str, tuple[str, ...]]
    monologue: dict[str, tuple[str, ...]]
    fragments: tuple[tuple[str, str], ...]
    refusal: tuple[str, ...] = ()
    """Replies that refuse the task (independent of ``data/refusals/``)."""
    """(fragment, category) pairs used to recognise what the group said."""


def _fragment(sentence: str) -> str:
    return max(sentence.split("{target}"), key=len).strip(_EDGE_PUNCTUATION)


def _bank(language: str) -> _Bank:
    return _load_bank(language, assets.root())


def check_synthetic(languages: Iterable[str]) -> None:
    """Load, and so check, what the synthetic model reads for a study of ``languages``: the
    prompt files of every language (it recognises a condition by them) and the phrase bank
    of each of ``languages`` (once per file)."""
    _markers()
    for language in languages:
        _bank(language)


@cache
def _load_bank(language: str, root: Path) -> _Bank:
    path = root / "data" / "synthetic" / f"{language}.yaml"
    data = load_yaml(path)
    check_bank(path, data, KINDS)
    talk = {k: tuple(data["talk"][k]) for k in KINDS}
    mono = {k: tuple(data["monologue"][k]) for k in KINDS}
    fragments = []
    for kind in ("coercive", "protective", "harmony_protective"):
        usable = [f for f in map(_fragment, talk[kind]) if len(f) >= 4]
        for frag in usable[:CONTAGION_CUES]:
            fragments.append((frag, "protective" if kind == "harmony_protective" else kind))
    return _Bank(language, talk, mono, tuple(fragments), tuple(data.get("refusal") or ()))


@dataclass(frozen=True)
class _Condition:
    language: str
    aligned: bool
    individuated: bool
    channel_format: str
    names: tuple[str, ...]


def _markers() -> list[tuple[str, str, str, str, str, tuple[str, ...]]]:
    return _markers_at(assets.root())


@cache
def _markers_at(root: Path) -> list[tuple[str, str, str, str, str, tuple[str, ...]]]:
    out = []
    for code in load_languages():
        p = load_prompts(code)
        names = tuple(x.call_name for x in p.personas)
        for fmt, text in p.channel_format.items():
            out.append(
                (
                    text.strip(),
                    code,
                    fmt,
                    p.alignment_prefix.strip(),
                    p.individuation_instruction.strip(),
                    names,
                )
            )
    return out


_CONDITIONS: dict[str, _Condition] = {}
_CONDITIONS_KEPT = 4096
"""System prompts remembered; more than the agents of every simulation in flight."""


def read_condition(system: str) -> _Condition:
    """Recover language, instructions and format from a system prompt."""
    found = _CONDITIONS.get(system)
    if found is None:
        for fmt_text, code, fmt, prefix, individuation, names in _markers():
            if fmt_text in system:
                present = tuple(n for n in names if n in system)
                found = _Condition(code, prefix in system, individuation in system, fmt, present)
                break
        else:
            found = _Condition("en", False, False, "tagged", ())
        if len(_CONDITIONS) >= _CONDITIONS_KEPT:
            _CONDITIONS.clear()
        _CONDITIONS[system] = found
    return found


class SyntheticModel:
    """Generates replies for a world; deterministic per request."""

    def __init__(self, world: World) -> None:
        self.world = world

    @staticmethod
    @cache
    def _group_offsets(seed: int, variation: tuple[tuple[str, float], ...]) -> dict[str, float]:
        rng = random.Random(f"group:{seed}")
        return {kind: rng.gauss(0.0, sd) for kind, sd in variation}

    def _logits(
        self, cond: _Condition, model: str, turn: int, heard: str, seed: int
    ) -> list[float]:
        w = self.world
        group = self._group_offsets(seed, tuple(sorted(w.group_variation.items())))
        severity = min(max((turn - 1) / 14, 0.0), 1.0)
        shares = self._contagion(cond.language, heard)
        effects = []
        if cond.aligned:
            effects.append(w.effect("alignment", model, cond.language))
        if cond.individuated:
            effects.append(w.effect("individuation", model, cond.language))
        logits = []
        for kind in KINDS:
            x = w.base.get(kind, 0.0) + w.severity.get(kind, 0.0) * severity
            x += w.contagion.get(kind, 0.0) * shares.get(kind, 0.0)
            x += sum(e.get(kind, 0.0) for e in effects) + group.get(kind, 0.0)
            logits.append(x)
        return logits

    def _contagion(self, language: str, heard: str) -> dict[str, float]:
        counts = {"coercive": 0, "protective": 0}
        for fragment, category in _bank(language).fragments:
            counts[category] += heard.count(fragment)
        total = sum(counts.values())
        return {k: v / total for k, v in counts.items()} if total else {}

    def reply(self, request: ChatRequest) -> str:
        """The synthetic agent's reply to a request (or the judge's, to a judge request)."""
        judged = read_judge_request(request.messages)
        if judged is not None:
            return self.judge_reply(request, *judged)
        return self.labelled_reply(request)[0]

    def judge_reply(self, request: ChatRequest, language: str, utterance: str) -> str:
        """The judge's JSON labels of one utterance: the oracle's categories, each flipped
        with probability ``judge_error_rate``, deterministically per request."""
        truth = oracle_labels(language, utterance)
        digest = hashlib.blake2b(
            f"judge|{request.seed}|{request.messages[0]['content']}|"
            f"{request.messages[-1]['content']}".encode(),
            digest_size=8,
        ).digest()
        rng = random.Random(int.from_bytes(digest, "big"))
        rate = self.world.judge_error_rate
        labels = {c: truth[c] ^ (rng.random() < rate) for c in JUDGE_CATEGORIES}
        return json.dumps(labels)

    def labelled_reply(self, request: ChatRequest) -> tuple[str, dict[str, list[str]]]:
        """The reply and, per channel, the kind of each sentence in it (the oracle)."""
        system = request.messages[0]["content"]
        last = request.messages[-1]["content"]
        cond = read_condition(system)
        digest = hashlib.blake2b(
            f"{request.seed}|{len(request.messages)}|{system}|{last}".encode(), digest_size=8
        ).digest()
        refusal = self._refusal(digest, cond)
        if refusal is not None:
            return refusal, {"talk": [], "monologue": []}
        rng = random.Random(int.from_bytes(digest, "big"))
        found = _FIRST_INT.search(last)
        turn = int(found.group(0)) if found else len(request.messages) // 2
        logits = self._logits(cond, request.model, turn, last, request.seed)
        temp = max(request.temperature, 0.05)
        weights = [math.exp(x / temp) for x in logits]
        extra = self._group_offsets(request.seed, tuple(sorted(self.world.group_variation.items())))
        return self._compose(rng, cond, request.model, weights, extra.get("monologue", 0.0))

    def _refusal(self, digest: bytes, cond: _Condition) -> str | None:
        """A refusal in the channel format, at the world's rate for the agent's condition.

        Drawn from its own hash of the request, and only when the rate is above 0, so a
        world without refusals writes exactly the replies it wrote before they existed.
        """
        w = self.world
        rate = w.refusal_rate_aligned if cond.aligned else w.refusal_rate_unaligned
        if not rate:
            return None
        draw = hashlib.blake2b(b"refusal|" + digest, digest_size=16).digest()
        if int.from_bytes(draw[:8], "big") / 2**64 >= rate:
            return None
        pool = _bank(cond.language).refusal
        if not pool:
            raise ConfigError(f"synthetic bank {cond.language}: no refusal sentences")
        text = pool[int.from_bytes(draw[8:], "big") % len(pool)]
        if cond.channel_format == "json":
            return json.dumps({"talk": text, "monologue": ""}, ensure_ascii=False)
        return f"[TALK] {text}\n[MONOLOGUE]"

    def _compose(
        self, rng: random.Random, cond: _Condition, model: str, weights: list[float], mono: float
    ) -> tuple[str, dict[str, list[str]]]:
        w, bank = self.world, _bank(cond.language)
        target = rng.choice(cond.names) if cond.names else "?"
        join = "" if cond.language in _NO_SPACE else " "

        def say(pool: dict[str, tuple[str, ...]], n: int) -> tuple[str, list[str]]:
            kinds = rng.choices(KINDS, weights=weights, k=n)
            text = join.join(rng.choice(pool[k]).replace("{target}", target) for k in kinds)
            return text, list(kinds)

        talk, talk_kinds = say(bank.talk, rng.randint(*w.talk_sentences))
        echoes = _echo_sentences(cond)
        if echoes and w.echo_rate and rng.random() < w.echo_rate:
            talk = join.join([talk, rng.choice(echoes)])
            talk_kinds.append(ECHO)
        mono_mean = w.monologue_mean + mono
        for kind in ("alignment", "individuation"):
            if getattr(cond, "aligned" if kind == "alignment" else "individuated"):
                mono_mean += w.effect(kind, model, cond.language).get("monologue", 0.0)
        monologue, mono_kinds = say(bank.monologue, int(max(mono_mean, 0.0) + rng.random()))
        error_rate = w.format_error_rate * (w.format_error_alignment if cond.aligned else 1.0)
        if rng.random() < min(error_rate, 1.0):
            return f"{talk}{join}{monologue}", {}
        labels = {"talk": talk_kinds, "monologue": mono_kinds}
        whisper = None
        if cond.names and rng.random() < w.whisper_rate:
            whisper_text, labels["whisper"] = say(bank.talk, 1)
            whisper = (rng.choice(cond.names), whisper_text)
        if cond.channel_format == "json":
            obj: dict[str, object] = {"talk": talk, "monologue": monologue}
            if whisper:
                obj["whisper"] = {"to": whisper[0], "text": whisper[1]}
            return json.dumps(obj, ensure_ascii=False), labels
        text = f"[TALK] {talk}\n[MONOLOGUE] {monologue}"
        return text + (f"\n[WHISPER:{whisper[0]}] {whisper[1]}" if whisper else ""), labels


_SENTENCE_END = re.compile(r"(?<=[.!?。！？।])\s*")


def _sentences(text: str) -> list[str]:
    """Sentences of an instruction text (one per line or sentence-final mark)."""
    out = []
    for line in text.splitlines():
        out += [s.strip() for s in _SENTENCE_END.split(line) if len(s.strip()) > 12]
    return out


def _echo_sentences(cond: _Condition) -> list[str]:
    """Sentences of the instructions this agent was given, which it may restate."""
    return _instruction_sentences(cond.language, assets.root(), cond.aligned, cond.individuated)


@cache
def _instruction_sentences(
    language: str, root: Path, aligned: bool, individuated: bool
) -> list[str]:
    p = load_prompts(language)
    texts = [p.alignment_prefix] if aligned else []
    texts += [p.individuation_instruction] if individuated else []
    return [s for text in texts for s in _sentences(text)]


def estimate_tokens(text: str) -> int:
    """A tokenizer stand-in: about four characters per token."""
    return len(text) // 4 + 1


class SyntheticBackend:
    """The in-process synthetic backend (implements ``alignbf.transport.backend.Backend``)."""

    def __init__(self, world: World) -> None:
        self.model = SyntheticModel(world)
        self.world = world

    def endpoint_id(self, model: str) -> str:
        """``synthetic:<world>``: worlds never share cache entries."""
        return f"synthetic:{self.world.name}"

    async def complete(self, request: ChatRequest) -> Completion:
        """Answer at once, deterministically."""
        text = self.model.reply(request)
        prompt_chars = sum(len(m["content"]) for m in request.messages)
        return Completion(
            text=text,
            prompt_tokens=prompt_chars // 4 + 1,
            completion_tokens=estimate_tokens(text),
            model=f"synthetic-{request.model}",
            cost_usd=0.0,
            system_fingerprint=f"synthetic-{self.world.name}",
        )

    async def aclose(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True)
class _Oracle:
    pattern: re.Pattern[str]
    kinds: dict[str, str]
    names: tuple[str, ...]


@cache
def _oracle(language: str, root: Path) -> _Oracle:
    bank = _load_bank(language, root)
    names = tuple(p.call_name for p in load_prompts(language).personas)
    kinds: dict[str, str] = {}
    for pool in (bank.talk, bank.monologue):
        for kind, sentences in pool.items():
            for sentence in sentences:
                kinds.setdefault(sentence, kind)
    for sentence in _instruction_sentences(language, root, True, True):
        kinds.setdefault(sentence, ECHO)
    name = "(?:" + "|".join(sorted(map(re.escape, names), key=len, reverse=True)) + "|\\?)"
    alternatives = [
        re.escape(s).replace(re.escape("{target}"), name)
        for s in sorted(kinds, key=len, reverse=True)
    ]
    return _Oracle(re.compile("|".join(alternatives)), kinds, names)


def oracle_sentences(language: str, text: str) -> list[tuple[str, str, str]]:
    """The generator's sentences in a message part: (kind, sentence, bank entry).

    The bank entry is the sentence as written in the bank (``{target}`` unfilled), so
    a validation can hold out a fixed half of the bank.


    The synthetic model writes every sentence verbatim from its phrase bank (or from the
    agent's own instructions, for an echo), with ``{target}`` filled by a first name, so
    the kind of each sentence is recovered exactly by looking it up; text that is no bank
    sentence is left out.
    """
    oracle = _oracle(language, assets.root())
    out = []
    for found in oracle.pattern.finditer(text):
        sentence = entry = found.group()
        kind = oracle.kinds.get(sentence)
        if kind is None:
            for name in (*oracle.names, "?"):
                entry = sentence.replace(name, "{target}")
                kind = oracle.kinds.get(entry)
                if kind is not None:
                    break
        out.append((kind or "neutral", sentence, entry))
    return out


def oracle_labels(language: str, text: str) -> dict[str, int]:
    """1 for each scoring category some sentence of ``text`` expresses, per the oracle."""
    found = {c for kind, _, _ in oracle_sentences(language, text) for c in ORACLE_CATEGORIES[kind]}
    return {c: int(c in found) for c in JUDGE_CATEGORIES}
