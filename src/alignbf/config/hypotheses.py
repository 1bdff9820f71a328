"""Preregistered hypotheses as code: the strict schema of ``prereg/<study>.yaml``.

A preregistration file names the study, its correction families, the runs of other
studies it borrows cells from (``inputs``) and one entry per hypothesis. Each
hypothesis says which outcome is estimated at which level on which subset, with which
estimator, in which direction, and how the verdict is reached. ``load_prereg(path)``
is the only way in; every problem becomes one :class:`~alignbf.errors.ConfigError` line
naming the file and the field path.

Decision rules (:meth:`Hypothesis.decide`), with ``null`` the estimator's null value
(0 for effects, the tested value for ``mean_vs``, ``p_null`` for ``count_languages``,
1 for ``ratio``) and ``b`` the ``equivalence_bound``:

* ``positive`` / ``negative``: *supported* when the adjusted p is below ``alpha`` and
  the estimate lies on the expected side of ``null``; *not_supported* when it is
  significant on the other side, or when the CI lies inside ``null ± b``; otherwise
  *inconclusive*.
* ``not_positive``: *supported* when the CI's upper bound is below ``null + b``;
  *not_supported* when the estimate is significantly above ``null``.
* ``equivalent``: *supported* when the CI lies inside ``null ± b``; *not_supported*
  when it lies entirely outside that band.
* ``decision: descriptive`` gives the verdict *descriptive* whatever the numbers.
"""

from __future__ import annotations

import math
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alignbf.config.study import phrase
from alignbf.config.yamlfile import load_yaml
from alignbf.errors import ConfigError

Direction = Literal["positive", "negative", "not_positive", "equivalent"]
Level = Literal["simulation", "agent"]
Scalar = float | str | bool
VERDICTS = ("supported", "not_supported", "inconclusive", "descriptive")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class GContrast(_Strict):
    type: Literal["g_contrast"]
    factor: str = "alignment_ratio"
    """Column that defines the two groups."""
    high: Scalar = 1.0
    """Level of ``factor`` for the first group (g = high - low)."""
    low: Scalar = 0.0
    """Level of ``factor`` for the second group."""


class Slope(_Strict):
    type: Literal["slope"]
    formula: str
    """statsmodels/patsy formula of an OLS model, e.g. ``cpi ~ alignment_ratio``."""
    term: str
    """The coefficient tested."""
    robust: Literal["HC0", "HC1", "HC2", "HC3"] | None = None
    """Heteroskedasticity-robust standard errors (null = classical)."""


class MixedTerm(_Strict):
    type: Literal["mixed_term"]
    formula: str
    """Fixed-effects formula, e.g. ``di ~ alignment_ratio``."""
    term: str
    """The fixed effect tested."""
    groups: str
    """Column with the grouping factor of the random effects."""
    re_formula: str | None = None
    """Random-effects formula (null = random intercept; ``~x`` = intercept and slope)."""
    per: float = Field(1.0, gt=0)
    """Report the coefficient per this many units of the term (0.01 = per percentage point
    of a 0..1 ratio), so it reads on the scale of the original report."""
    df: Literal["satterthwaite", "between"] = "satterthwaite"
    """Degrees of freedom of the t test: ``satterthwaite`` (as R's lmerTest; G - 1, with the
    reason in the note, when they cannot be computed) or ``between`` (G - 1 for G groups,
    the df of a between-group comparison)."""


class Interaction(_Strict):
    type: Literal["interaction"]
    formula: str
    """OLS formula with the interaction, e.g. ``cpi ~ alignment_ratio * C(language)``."""
    null_formula: str
    """The same model without the interaction terms (the joint F test compares both)."""
    factor: str = "alignment_ratio"
    """Predictor whose per-group slopes the estimate summarises."""
    by: str = "language"
    """Grouping column."""
    summary: Literal["sd_of_slopes", "rest_minus_reference"] = "sd_of_slopes"
    """The estimate beside the omnibus F test: the SD of the per-group slopes of ``factor``
    (no CI), or one fixed-effect contrast with its CI: the mean slope of the other groups
    minus the slope of the formula's reference group (the mean of the interaction terms)."""
    per: float = Field(1.0, gt=0)
    """Report the contrast per this many units of ``factor`` (see ``mixed_term``)."""


class PerGroup(_Strict):
    factor: str = "alignment_ratio"
    """Predictor of the per-group effect."""
    effect: Literal["slope", "g"] = "slope"
    """Per-group effect: OLS slope of the outcome on ``factor``, or Hedges' g high - low."""
    high: Scalar = 1.0
    """High level of ``factor`` (effect ``g`` only)."""
    low: Scalar = 0.0
    """Low level of ``factor`` (effect ``g`` only)."""
    by: str = "language"
    """Grouping column."""


class CountLanguages(PerGroup):
    type: Literal["count_languages"]
    criterion: Literal["positive", "significant_positive"] = "positive"
    """What counts: a positive effect, or a positive effect with p below ``alpha_each``."""
    alpha_each: float = Field(0.05, gt=0, lt=1)
    """Per-group significance level (criterion ``significant_positive``)."""
    p_null: float = Field(0.5, gt=0, lt=1)
    """Chance of a group counting under the null hypothesis (the binomial test's p)."""
    alternative: Literal["greater", "two-sided", "less"] = "greater"
    """Alternative of the binomial test."""
    test: Literal["exact", "midp"] = "exact"
    """The binomial test: ``exact`` (never rejects more often than alpha; with 16 groups and
    a small ``p_null`` far less often) or ``midp`` (Lancaster's mid-p: the observed count's
    probability counted half, a rejection rate near alpha on average that may exceed it)."""


class Correlation(PerGroup):
    type: Literal["correlation"]
    attribute: str
    """Language attribute from data/languages.yaml correlated with the effect (e.g. pdi)."""


class MeanVs(_Strict):
    type: Literal["mean_vs"]
    value: float
    """Value the mean of the outcome is tested against (one-sample t test)."""


class Ratio(_Strict):
    type: Literal["ratio"]
    numerator: str
    """Column summed for the numerator (e.g. conformity)."""
    denominator: str
    """Column summed for the denominator (e.g. individuation)."""
    factor: str = "alignment_ratio"
    """Column that defines the two groups."""
    high: Scalar = 1.0
    """Level of ``factor`` whose ratio is divided ..."""
    low: Scalar = 0.0
    """... by the ratio at this level."""
    bootstrap: int = Field(2000, ge=100, le=100_000)
    """Percentile-bootstrap resamples of simulations for the CI."""
    seed: int = 0
    """Seed of the bootstrap."""


Estimator = Annotated[
    GContrast | Slope | MixedTerm | Interaction | CountLanguages | Correlation | MeanVs | Ratio,
    Field(discriminator="type"),
]


class Reference(_Strict):
    statistic: str
    """Name of the reported statistic (g, beta, r, count, mean, ratio)."""
    value: float | None = None
    """The reported number (null when only a direction was reported)."""
    p: str | None = None
    """The reported p-value as written, e.g. ``< .0001``."""
    source: Literal["paper", "summary", "companion", "assumed"]
    """Where the number comes from (PAPER.md tags)."""
    text: str | None = None
    """Free text replacing ``statistic = value`` (e.g. ``15/16 languages``)."""

    def render(self) -> str:
        """``g = -1.844, p < .0001 [paper]``."""
        head = self.text or (
            self.statistic if self.value is None else f"{self.statistic} = {self.value:g}"
        )
        p = f", p {self.p}" if self.p else ""
        return f"{head}{p} [{self.source}]"


class Hypothesis(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_]*$")
    """Stable identifier (lower case, digits, underscores)."""
    statement: str = Field(min_length=1)
    """The claim in plain language."""
    outcome: str
    """Score column estimated (cpi, di, conformity_pct, harmony_share, ...)."""
    level: Level = "simulation"
    """Unit of analysis: one row per simulation or per agent."""
    subset: dict[str, Scalar | list[Scalar]] = {}
    """Rows used: column -> value (or list of values)."""
    estimator: Estimator
    """How the estimate, CI and p-value are computed."""
    expected: Direction
    """Preregistered direction of the effect."""
    alpha: float = Field(0.05, gt=0, lt=1)
    """Significance level the adjusted p-value is compared with."""
    ci: float = Field(0.95, gt=0, lt=1)
    """Confidence level of the reported interval."""
    family: str
    """Correction family (Holm within each family)."""
    decision: Literal["significance", "descriptive"] = "significance"
    """significance: the rule in the module docstring; descriptive: no verdict."""
    exploratory: bool
    """True for claims not tested confirmatorily."""
    reference: Reference
    """What the original paper reported."""
    equivalence_bound: float | None = Field(None, gt=0)
    """Smallest effect of interest; CIs inside ``null ± bound`` count as no effect."""
    input: str | None = None
    """Take the data from this input run (see ``inputs``) instead of the analysed run."""
    combine: list[str] = []
    """Add the rows of these input runs to the analysed run's and recompute the indices on
    the union, so every row shares one z-score reference (``input`` must then be unset)."""

    @model_validator(mode="after")
    def _check(self) -> Hypothesis:
        if self.expected in ("not_positive", "equivalent") and self.equivalence_bound is None:
            raise ValueError(f"expected = {self.expected} needs an equivalence_bound")
        formula = getattr(self.estimator, "formula", None)
        if formula is not None and formula.split("~")[0].strip() != self.outcome:
            raise ValueError(f"the formula {formula!r} does not model outcome {self.outcome!r}")
        by_p = self.decision == "significance" and self.expected in ("positive", "negative")
        if isinstance(self.estimator, Ratio) and by_p:
            raise ValueError(
                "estimator ratio gives no p-value, so a directional verdict is never reached: "
                "use decision: descriptive, or expected: equivalent with an equivalence_bound"
            )
        spread = (
            isinstance(self.estimator, Interaction) and self.estimator.summary == "sd_of_slopes"
        )
        if spread and (self.equivalence_bound is not None or self.expected == "negative"):
            raise ValueError(
                "the SD of slopes has no CI and is never negative: an equivalence_bound or "
                "expected: negative needs summary: rest_minus_reference"
            )
        return self

    def decide(
        self, estimate: float, ci_low: float, ci_high: float, p_adj: float, null: float = 0.0
    ) -> str:
        """The verdict for these numbers (see the module docstring)."""
        if self.decision == "descriptive":
            return "descriptive"
        b = self.equivalence_bound
        significant = not math.isnan(p_adj) and p_adj < self.alpha
        inside = b is not None and null - b < ci_low and ci_high < null + b
        if self.expected == "equivalent":
            outside = b is not None and (ci_low > null + b or ci_high < null - b)
            return "supported" if inside else "not_supported" if outside else "inconclusive"
        above, below = significant and estimate > null, significant and estimate < null
        if self.expected == "not_positive":
            if b is not None and ci_high < null + b:
                return "supported"
            return "not_supported" if above else "inconclusive"
        right, wrong = (above, below) if self.expected == "positive" else (below, above)
        if right:
            return "supported"
        return "not_supported" if wrong or inside else "inconclusive"

    def reason(
        self, estimate: float, ci_low: float, ci_high: float, p_adj: float, null: float = 0.0
    ) -> str:
        """Why :meth:`decide` gives its verdict for these numbers, in words."""
        if self.decision == "descriptive":
            return "descriptive: no test is preregistered"
        verdict = self.decide(estimate, ci_low, ci_high, p_adj, null)
        b = self.equivalence_bound
        band = f"{null:g} ± {b:g}" if b is not None else ""
        ci = f"the {self.ci:.0%} CI [{ci_low:.3g}, {ci_high:.3g}]"
        test = (
            f"p_adj = {p_adj:.3g} {'<' if p_adj < self.alpha else '>='} alpha = {self.alpha:g}"
            if not math.isnan(p_adj)
            else "no p-value"
        )
        if self.expected == "equivalent":
            where = {"supported": "lies inside", "not_supported": "lies outside"}
            return f"{ci} {where.get(verdict, 'overlaps the edge of')} {band}"
        if self.expected == "not_positive":
            if verdict == "supported":
                return f"{ci} stays below {null + (b or 0):g} (null + bound)"
            if verdict == "not_supported":
                return f"{test}, the estimate {estimate:.3g} above {null:g}"
            return f"{ci} reaches {null + (b or 0):g} (null + bound) and {test}"
        side = "above" if estimate > null else "below"
        if verdict == "supported":
            return f"{test}, the estimate {side} {null:g} as expected"
        if verdict == "not_supported":
            if b is not None and null - b < ci_low and ci_high < null + b:
                return f"{ci} lies inside {band}: no effect of interest"
            return f"{test}, the estimate {side} {null:g}, against the expectation"
        if math.isnan(p_adj) or p_adj >= self.alpha:
            return test + (f"; {ci} is not inside {band}" if b is not None else "")
        return f"{test}, but the estimate equals {null:g}"


class Family(_Strict):
    method: Literal["holm", "bh", "bonferroni", "none"] = "holm"
    """Multiplicity adjustment within the family."""
    description: str = ""
    """What the family holds."""


class InputRun(_Strict):
    study: str
    """Study name (``run`` table key ``study``) of the run that supplies the cells."""
    description: str = ""
    """Why the input is needed. Found with ``--input NAME=DIR``, or else as the most
    recent run of ``study`` with the same backend in the analysed run's parent directory."""


class ValidityGate(_Strict):
    kappa: float = Field(0.6, ge=-1, le=1)
    """Smallest Cohen's kappa of the lexicon against the human codes, per category and
    language (``alignbf code agree``)."""
    min_coded: int = Field(100, ge=1)
    """Fewest coded utterances per language."""
    categories: list[Literal["coercive", "protective", "conformity", "individuation"]] = [
        "coercive",
        "protective",
    ]
    """Categories whose validity a verdict needs (CPI and DI use coercive and protective)."""


class Prereg(_Strict):
    study: str
    """Study the hypotheses belong to."""
    version: str = "1"
    """Version of this preregistration."""
    description: str = ""
    """What is preregistered, in one paragraph."""
    families: dict[str, Family]
    """Correction families by name."""
    inputs: dict[str, InputRun] = {}
    """Runs of other studies whose cells some hypotheses use."""
    hypotheses: list[Hypothesis] = Field(min_length=1)
    """The hypotheses, one per claim."""
    validity: ValidityGate | None = None
    """Minimum measurement validity: until a language meets it, its confirmatory verdicts
    read ``measure_not_validated``."""

    @model_validator(mode="after")
    def _check(self) -> Prereg:
        seen: set[str] = set()
        for i, h in enumerate(self.hypotheses):
            if h.id in seen:
                raise ValueError(f"hypotheses[{i}].id {h.id!r} is used twice")
            seen.add(h.id)
            if h.family not in self.families:
                known = ", ".join(self.families)
                raise ValueError(f"hypotheses[{i}].family {h.family!r} is not one of: {known}")
            if h.input is not None and h.input not in self.inputs:
                raise ValueError(f"hypotheses[{i}].input {h.input!r} is not declared in inputs")
            for name in h.combine:
                if name not in self.inputs:
                    raise ValueError(f"hypotheses[{i}].combine {name!r} is not declared in inputs")
            if h.combine and h.input is not None:
                raise ValueError(f"hypotheses[{i}]: give input or combine, not both")
        return self


def _models_of(annotation: Any) -> list[type[BaseModel]]:
    """Pydantic models an annotation can hold (through lists, dicts, unions, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is None:
        return []
    args = typing.get_args(annotation)
    if origin is Annotated:
        args = args[:1]
    elif origin is dict:
        args = args[1:]
    elif origin not in (list, typing.Union, types.UnionType):
        return []
    return [m for arg in args for m in _models_of(arg)]


def _tag(model: type[BaseModel]) -> Any:
    """The ``type`` literal of an estimator model (None for other models)."""
    field = model.model_fields.get("type")
    return typing.get_args(field.annotation)[0] if field is not None else None


def _walk(loc: tuple[Any, ...]) -> tuple[str, list[type[BaseModel]]]:
    """Readable path of an error location and the models holding its last field."""
    models: list[type[BaseModel]] = [Prereg]
    shown: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, int):
            shown.append(f"[{part}]")
            continue
        owners = [m for m in models if part in m.model_fields]
        tagged = [m for m in models if _tag(m) == part]
        if tagged and not owners:
            models = tagged
            continue
        shown.append(f".{part}")
        if owners and i < len(loc) - 1:
            models = _models_of(owners[0].model_fields[part].annotation)
    return "".join(shown).lstrip(".") or "(top level)", models


def _describe(error: Any) -> str:
    """One phrase for one pydantic error, with paths through the estimator union."""
    where, models = _walk(tuple(error["loc"]))
    return phrase(error, where, sorted({f for m in models for f in m.model_fields}))


def parse_prereg(data: dict[str, Any], source: Path | str) -> Prereg:
    """Validate already-loaded YAML data as a preregistration."""
    try:
        return Prereg.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


def load_prereg(path: Path) -> Prereg:
    """Load and validate a preregistration file.

    Raises:
        ConfigError: one line naming the file, the field path and what is accepted.
    """
    return parse_prereg(load_yaml(path), path)
