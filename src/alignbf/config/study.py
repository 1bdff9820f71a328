"""The study configuration: one strict, frozen pydantic model per YAML section.

``load_study(path)`` is the only way in. Every validation failure becomes one
``ConfigError`` line naming the file, the field path and what would be accepted.
"""

from __future__ import annotations

import difflib
import math
import typing
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from alignbf.config import assets
from alignbf.config.urls import redact_urls
from alignbf.config.yamlfile import load_yaml
from alignbf.errors import ConfigError

ZScope = Literal["within", "control", "language", "pooled", "model"]


MAX_SIMULATIONS = 1_000_000
"""Largest crossed design (cells before exclusions x replicates) a study may have. The
paper's largest study has 1,200; a million simulations of ten agents over 15 turns are
150 million calls, beyond any budget, and a grid that size would only exhaust memory."""


def _takes_bool(annotation: Any) -> bool:
    """Whether a field annotation accepts booleans (or holds no numbers at all)."""
    if annotation is bool:
        return True
    if annotation in (int, float):
        return False
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is list:
        return _takes_bool(args[0]) if args else True
    return not args or any(_takes_bool(arg) for arg in args if arg is not type(None))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # YAML `true` would otherwise pass as the number 1
        field = cls.model_fields.get(info.field_name or "")
        values = value if isinstance(value, list) else [value]
        bools = any(isinstance(v, bool) for v in values)
        if bools and field is not None and not _takes_bool(field.annotation):
            raise ValueError("must be a number, not true or false")
        return value


class Agents(_Strict):
    count: int = Field(10, ge=1, le=10)
    """Agents per group; personas 1..count of the language's prompt file are used."""
    target: int = Field(10, ge=1, le=10)
    """1-based persona number of the resident the escalation selects for eviction."""


class Conversation(_Strict):
    turns: int = Field(15, ge=1, le=15)
    """Scripted turns per simulation (the first ``turns`` of the 15 events)."""
    turn_order: Literal["sequential", "simultaneous"] = "sequential"
    """sequential: each speaker sees earlier speakers of the same turn; simultaneous: none."""
    channel_format: Literal["tagged", "json"] = "tagged"
    """How agents mark talk, monologue and whisper in a reply."""
    history_window: int | None = Field(None, ge=1)
    """Turns of public record an agent sees; null = the whole conversation."""
    invalid_threshold: float = Field(0.5, ge=0.0, le=1.0)
    """Share of format-ignoring replies above which a simulation is ``invalid_output``."""


class Factors(_Strict):
    alignment_ratios: list[float] = Field(min_length=1)
    """Shares of the group given the alignment prefix, each in [0, 1]."""
    languages: list[str] = Field(min_length=1)
    """Language codes from data/languages.yaml."""
    individuation_ratios: list[float] = Field(default_factory=lambda: [0.0], min_length=1)
    """Shares of the group given the individuation instruction, each in [0, 1]."""
    models: list[str] = Field(min_length=1)
    """Model names; each must be mapped to an endpoint in ``endpoints``."""

    @model_validator(mode="after")
    def _check(self) -> Factors:
        for name in ("alignment_ratios", "individuation_ratios"):
            values = getattr(self, name)
            for i, v in enumerate(values):
                if not 0.0 <= v <= 1.0:
                    raise ValueError(f"{name}[{i}] = {v} is outside [0, 1]")
            if len(set(values)) != len(values):
                raise ValueError(f"{name} has duplicate levels")
        for name in ("languages", "models"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"{name} has duplicates")
        known = load_languages()
        for i, code in enumerate(self.languages):
            if code not in known:
                raise ValueError(
                    f"languages[{i}] = {code!r} is not a known language; "
                    f"accepted: {', '.join(known)}"
                )
        return self


class Exclusion(_Strict):
    language: str | None = None
    """Exclude cells of this language (null = any)."""
    alignment_ratio: float | None = None
    """Exclude cells at this alignment ratio (null = any)."""
    individuation_ratio: float | None = None
    """Exclude cells at this individuation ratio (null = any)."""
    model: str | None = None
    """Exclude cells of this model (null = any)."""
    reason: str = ""
    """Why the design leaves these cells out."""


class Sampling(_Strict):
    temperature: float = Field(0.9, ge=0.0, le=2.0)
    """Sampling temperature sent to every model."""
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    """Nucleus sampling mass."""
    max_tokens: int = Field(768, ge=1, le=32768)
    """Upper bound on tokens per reply."""


class IndexWeights(_Strict):
    monologue_ratio: float = 1.0
    """Weight of z(monologue ratio)."""
    coercive: float = 1.0
    """Weight of z(coercive hits per 1,000 units)."""
    protective: float = -1.0
    """Weight of z(protective hits per 1,000 units)."""


class EchoFilter(_Strict):
    words: int = Field(4, ge=0)
    """Shortest repeated run, in words, that counts as an echo (``word`` lexicons); 0 = off."""
    chars: int = Field(8, ge=0)
    """Shortest repeated run, in letters, that counts as an echo (ja, zh); 0 = off."""
    languages: dict[str, int] = {
        "fr": 5, "tr": 3, "vi": 6, "ar": 3, "hi": 5, "th": 17, "ja": 11, "zh": 7, "ko": 3,
    }  # fmt: skip
    """Per-language run length overriding the two above: the equivalent of ``words``
    English words, round(4 x the ratio of the units of the language's prompt file to the
    words of the English one, which it translates): Thai letters leave out vowel and
    tone marks (4.3 per English word), Japanese 2.7, Vietnamese syllables 1.5."""

    def units(self, language: str, unit: str) -> int:
        """The run length for a language whose lexicon counts ``unit`` (word or char)."""
        return self.languages.get(language, self.chars if unit == "char" else self.words)

    def table(self) -> dict[str, int]:
        """The settings as one lookup: language codes, then ``word`` and ``char``."""
        return {**self.languages, "word": self.words, "char": self.chars}


class Judge(_Strict):
    model: str = Field(min_length=1)
    """Model name of the judge; mapped to an endpoint in the study's ``endpoints`` (the
    synthetic backend answers it from the oracle)."""
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    """Sampling temperature of every judge call."""
    seed: int = Field(0, ge=0)
    """API seed of a judge call (plus the attempt number when a reply is re-asked)."""
    max_tokens: int = Field(64, ge=8, le=4096)
    """Upper bound on tokens per judge reply (one small JSON object)."""
    max_attempts: int = Field(3, ge=1, le=10)
    """Requests per utterance while the reply is not JSON of the expected shape; after
    the last the utterance is recorded as unlabelled, never guessed."""


class Scoring(_Strict):
    instrument: Literal["lexicon", "judge", "both"] = "lexicon"
    """What counts the categories of each utterance: the keyword lexicons, a judge model
    (``judge``) or both (indices from the lexicon, plus lexicon-judge agreement)."""
    judge: Judge | None = None
    """The judge model and its sampling; required when ``instrument`` is judge or both."""
    zscore_scope: ZScope = "within"
    """Reference of the z-scores: ``within`` (within language: the pooled within-cell SD,
    centred on the mean of the cell means), ``control`` (the same SD, centred on the
    control cell's mean), ``language``, ``pooled`` (the whole study) or ``model``."""
    echo: EchoFilter = EchoFilter()
    """Hits inside spans that repeat the agent's instructions, persona or the facility
    events are not counted (see the README's scoring section)."""
    normalisation: Literal["per_1000_units", "raw"] = "per_1000_units"
    """Hit counts per 1,000 units (words, or characters for ja/zh/th) or raw counts."""
    hit_channels: list[Literal["talk", "monologue", "whisper"]] = ["talk", "whisper"]
    """Channels whose lexicon hits count for the indices (units of these channels are the
    denominator); the monologue ratio always uses every channel."""
    cpi: IndexWeights = IndexWeights()
    """CPI = z(monologue ratio) + z(coercive) - z(protective) by default."""
    di: IndexWeights = IndexWeights(monologue_ratio=1.0, coercive=-1.0, protective=1.0)
    """DI = z(monologue ratio) + z(protective) - z(coercive) by default."""

    @model_validator(mode="after")
    def _check(self) -> Scoring:
        if self.instrument != "lexicon" and self.judge is None:
            raise ValueError(f"instrument {self.instrument!r} needs a judge block (judge.model)")
        return self


class Budget(_Strict):
    usd: float | None = Field(None, ge=0)
    """Stop new calls once this much is spent (null = no limit)."""
    tokens: int | None = Field(None, ge=0)
    """Stop new calls after this many tokens (null = no limit)."""
    calls: int | None = Field(None, ge=0)
    """Stop after this many calls (null = no limit)."""


class Study(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Short identifier; part of every sim_id."""
    description: str = ""
    """What the study is, in one paragraph."""
    agents: Agents = Agents()
    """Group composition."""
    conversation: Conversation = Conversation()
    """Turn loop settings."""
    factors: Factors
    """The crossed design factors."""
    replicates: int = Field(ge=1, le=10_000)
    """Simulations per cell."""
    exclusions: list[Exclusion] = []
    """Cells the design leaves out."""
    sampling: Sampling = Sampling()
    """Sampling parameters sent with every call."""
    scoring: Scoring = Scoring()
    """Choices the scorer makes."""
    endpoints: dict[str, str] = {}
    """Model name -> endpoint name in the endpoints file."""
    endpoints_file: str = "endpoints.yaml"
    """Endpoints file, relative to this config (or built-in)."""
    prereg: str | None = None
    """Preregistration file, relative to this config (or built-in prereg/)."""
    budget: Budget = Budget()
    """Spending limits for ``alignbf run``."""

    @model_validator(mode="after")
    def _check(self) -> Study:
        if self.agents.target > self.agents.count:
            raise ValueError(f"agents.target = {self.agents.target} exceeds agents.count")
        self._check_size()
        judge = self.scoring.judge
        if judge is not None and self.endpoints and judge.model not in self.endpoints:
            raise ValueError(
                f"scoring.judge.model {judge.model!r} is not mapped to an endpoint in endpoints"
            )
        for i, ex in enumerate(self.exclusions):
            if ex.language is not None and ex.language not in self.factors.languages:
                raise ValueError(f"exclusions[{i}].language {ex.language!r} is not in the design")
            if ex.model is not None and ex.model not in self.factors.models:
                raise ValueError(f"exclusions[{i}].model {ex.model!r} is not in the design")
        return self

    def _check_size(self) -> None:
        """Refuse a design past ``MAX_SIMULATIONS`` from the factor sizes (no cell is built)."""
        f = self.factors
        sizes = {
            "alignment ratio(s)": len(f.alignment_ratios),
            "language(s)": len(f.languages),
            "individuation level(s)": len(f.individuation_ratios),
            "model(s)": len(f.models),
            "replicates": self.replicates,
        }
        total = math.prod(sizes.values())
        if total > MAX_SIMULATIONS:
            shown = " x ".join(f"{n:,} {what}" for what, n in sizes.items())
            raise ValueError(
                f"the design has {shown} = {total:,} simulations, more than the "
                f"{MAX_SIMULATIONS:,} a study may have; split it into studies or use fewer levels"
            )


def load_languages() -> dict[str, dict[str, Any]]:
    """The language registry, ``data/languages.yaml`` (code -> name, script, PDI)."""
    return _languages_at(assets.path("data", "languages.yaml").resolve())


@cache
def _languages_at(path: Path) -> dict[str, dict[str, Any]]:
    languages: dict[str, dict[str, Any]] = load_yaml(path)["languages"]
    return languages


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("function-after",) and not str(part).startswith("function-"):
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc[:-1]:
        field = getattr(current, "model_fields", {}).get(part)
        if field is None or not isinstance(field.annotation, type):
            return []
        current = field.annotation
    return list(getattr(current, "model_fields", {}))


def phrase(error: Any, where: str, fields: list[str]) -> str:
    """One phrase for one pydantic error, given its readable path and the fields accepted there.

    Unknown fields get a "did you mean" suggestion (or the accepted names); other errors
    show the problem and the value given.
    """
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), fields, n=1)
        hint = ""
        if close:
            hint = f" (did you mean {close[0]!r}?)"
        elif fields:
            hint = f" (accepted: {', '.join(fields)})"
        return f"{where}: unknown field{hint}"
    if error["type"] == "missing":
        return f"{where}: required field is missing"
    msg = str(error["msg"]).removeprefix("Value error, ")
    if not loc:
        return msg
    shown = error.get("input")
    if isinstance(shown, str):
        shown = redact_urls(shown)
    got = "" if isinstance(shown, (dict, list)) or shown is None else f" (got {shown!r})"
    return f"{where}: {msg}{got}"


def _describe(error: Any, root: type[BaseModel] | None = None) -> str:
    """One phrase for one pydantic error: field path, problem, accepted values."""
    loc = tuple(error["loc"])
    return phrase(error, _location(loc), _fields_at(root or Study, loc))


def parse_study(data: dict[str, Any], source: Path | str) -> Study:
    """Validate already-loaded YAML data as a study."""
    try:
        return Study.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


def load_study(path: str | Path) -> Study:
    """Load and validate a study config.

    Args:
        path: A YAML path, or the name of a built-in study (``study2``).

    Raises:
        ConfigError: one line naming the file, the field path and the accepted values.
    """
    resolved = assets.find_config(path)
    return parse_study(load_yaml(resolved), resolved)


def resolve_relative(config_path: Path, name: str, builtin_dir: str) -> Path:
    """Resolve a file a study refers to: beside the config first, then built-in."""
    beside = (config_path.parent / name).resolve()
    if beside.exists():
        return beside
    builtin = assets.path(builtin_dir, Path(name).name)
    if builtin.exists():
        return builtin
    raise ConfigError(f"{config_path}: referenced file {name!r} not found")
