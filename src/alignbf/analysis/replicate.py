"""``alignbf replicate``: does a run reproduce a reference, hypothesis by hypothesis?

The reference is one of:

* a results file (``data/paper_results.yaml``: per hypothesis id the reported estimate,
  its direction, an optional CI or equivalence band, group sizes to derive a CI for g);
* ``planted:<world>``: the directions a synthetic world plants (its ``expected`` block);
* another run directory, analysed the same way.

Per confirmatory hypothesis, with its reason in words (after Simonsohn 2015, "Small
telescopes", and Lakens 2017, "Equivalence tests"):

* **replicated**: the preregistered test is significant in the original's direction (the
  verdict is *supported*). A larger effect than the original's, whose CI excludes the
  original estimate, is still a replication, labelled "larger than original".
* **not_replicated**: significant in the opposite direction; or the CI excludes the
  original estimate and the effect is shown to be small: for a Hedges' g with the
  original group sizes, the one-sided 95% upper bound (towards the original's
  direction) lies below d33, the effect the original study had 33% power to detect;
  or, with an equivalence bound (the hypothesis' ``equivalence_bound`` or the
  reference's), the 90% CI lies inside ``(-bound, +bound)`` (TOST at alpha = .05).
* **inconclusive**: neither; the reason says which part is missing.

Against another run, a hypothesis that fails while the model or its system fingerprint
changed between the runs is **drift**, kept apart from non-replication. Exit code: 0 all
replicated, 1 any not replicated, 2 otherwise (inconclusive or drift). Exploratory
hypotheses are shown and never counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from scipy import optimize
from scipy import stats as sps

from alignbf.analysis.stats import g_interval
from alignbf.config import assets
from alignbf.config.yamlfile import load_yaml
from alignbf.errors import ConfigError
from alignbf.store.reader import model_versions
from alignbf.store.store import Store

COLUMNS = [
    "id",
    "exploratory",
    "expected",
    "estimate",
    "ci_low",
    "ci_high",
    "verdict",
    "ref_estimate",
    "ref_ci_low",
    "ref_ci_high",
    "outcome",
    "note",
]


@dataclass
class Replication:
    """The comparison of a run with a reference."""

    table: pd.DataFrame
    """One row per hypothesis: ``id, exploratory, expected, estimate, ci_low, ci_high, verdict,
    ref_estimate, ref_ci_low, ref_ci_high, outcome, note``."""
    reference: str
    drift: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 replicated, 1 not replicated, 2 inconclusive (or drift)."""
        counted = self.table[~self.table["exploratory"].astype(bool)]["outcome"]
        counted = counted[counted != "no_reference"]
        if counted.empty:
            return 2
        if (counted == "not_replicated").any():
            return 1
        return 0 if (counted == "replicated").all() else 2


def _band(ref: dict[str, Any]) -> tuple[float, float] | None:
    est = ref.get("estimate")
    if est is None:
        return None
    if "ci" in ref:
        low, high = ref["ci"]
        return float(low), float(high)
    if ref.get("statistic") == "g" and "n" in ref:
        return g_interval(float(est), *ref["n"])
    if "equivalence" in ref:
        return float(est) - ref["equivalence"], float(est) + ref["equivalence"]
    return None


def d33(n1: int, n2: int, alpha: float = 0.05) -> float:
    """The effect size a two-sample t test with ``n1``, ``n2`` detects with 33% power.

    Two-sided at ``alpha``: the standardised difference d at which the noncentral t
    (df = n1 + n2 - 2, ncp = d sqrt(n1 n2 / (n1 + n2))) exceeds the critical value in
    absolute value with probability 1/3 (Simonsohn 2015).
    """
    df = n1 + n2 - 2
    crit = float(sps.t.ppf(1 - alpha / 2, df))
    scale = math.sqrt(n1 * n2 / (n1 + n2))

    def power(d: float) -> float:
        ncp = d * scale
        return float(sps.nct.sf(crit, df, ncp) + sps.nct.cdf(-crit, df, ncp)) - 1 / 3

    return float(optimize.brentq(power, 1e-6, 5.0))


def _ci90(row: pd.Series) -> tuple[float, float] | None:
    """The 90% CI of an estimate from its SE and df (two one-sided 95% bounds)."""
    est, se, df = float(row["estimate"]), float(row.get("se", math.nan)), row.get("df")
    if not math.isfinite(se) or se <= 0:
        return None
    dof = float(df) if df is not None and math.isfinite(float(df)) and float(df) > 0 else math.inf
    q = float(sps.norm.ppf(0.95)) if math.isinf(dof) else float(sps.t.ppf(0.95, dof))
    return est - q * se, est + q * se


def _small(row: pd.Series, ref: dict[str, Any]) -> str | None:
    """Why the run's effect is shown to be too small to matter, or None."""
    est, original = float(row["estimate"]), ref.get("estimate")
    bound = ref.get("equivalence_bound") or row.get("equivalence_bound")
    if ref.get("statistic") == "g" and "n" in ref and original is not None:
        n1, n2 = (int(v) for v in ref["n"])
        total = int(row.get("n") or 0)
        if total >= 4:
            sign = 1.0 if float(original) >= 0 else -1.0
            low, high = g_interval(est, total // 2, total - total // 2, 0.90)
            upper = max(sign * low, sign * high)
            small = d33(n1, n2)
            if upper < small:
                return (
                    f"the effect is small: its one-sided 95% bound in the original's "
                    f"direction ({sign * upper:+.3f}) falls short of d33 = {sign * small:+.3f}, "
                    f"the effect the original study (n = {n1} + {n2}) had 33% power to detect"
                )
    null = float(row.get("null", 0.0))
    if bound is not None and math.isfinite(float(bound)) and math.isfinite(null):
        interval, b = _ci90(row), float(bound)
        if interval is not None and null - b < interval[0] and interval[1] < null + b:
            return (
                f"the effect is equivalent to none: the 90% CI [{interval[0]:.3f}, "
                f"{interval[1]:.3f}] lies inside {null:g} +- {b:g} (TOST, alpha = .05)"
            )
    return None


def _excludes(row: pd.Series, original: Any) -> bool:
    if original is None:
        return True
    low, high = float(row["ci_low"]), float(row["ci_high"])
    return not (math.isfinite(low) and math.isfinite(high)) or not low <= float(original) <= high


def _judge(row: pd.Series, ref: dict[str, Any] | None) -> tuple[str, str, tuple[Any, ...]]:
    if ref is None:
        return "no_reference", "", (None, None, None)
    band = _band(ref)
    original = ref.get("estimate")
    shown = (original, *(band or (None, None)))
    verdict = row["verdict"]
    if verdict == "descriptive":
        return "descriptive", "not tested", shown
    if verdict == "measure_not_validated":
        return "inconclusive", "the measure is not validated for this language", shown
    est = float(row["estimate"])
    if row.get("expected") == "equivalent":
        if verdict == "supported":
            return "replicated", "the CI lies inside the preregistered band", shown
        if verdict == "not_supported":
            return "not_replicated", "the CI lies outside the preregistered band", shown
        return "inconclusive", "the CI overlaps the edge of the preregistered band", shown
    if verdict == "supported":
        if original is not None and abs(est) > abs(float(original)) and _excludes(row, original):
            return (
                "replicated",
                "significant in the original's direction; larger than original",
                shown,
            )
        return "replicated", "significant in the original's direction", shown
    direction = ref.get("direction") or row.get("expected")
    significant = math.isfinite(float(row.get("p_adj", math.nan))) and float(row["p_adj"]) < float(
        row.get("alpha", 0.05) or 0.05
    )
    opposite = (direction == "positive" and est < 0) or (direction == "negative" and est > 0)
    if verdict == "not_supported" and significant and opposite:
        return "not_replicated", "significant in the direction opposite to the original", shown
    if not math.isfinite(est):
        return "inconclusive", str(row.get("note") or "not estimable"), shown
    if original is not None and not _excludes(row, original):
        return (
            "inconclusive",
            "not significant, and the CI still contains the original estimate",
            shown,
        )
    small = _small(row, ref)
    if small is not None:
        prefix = "the CI excludes the original estimate and " if original is not None else ""
        return "not_replicated", prefix + small, shown
    return (
        "inconclusive",
        "not significant, but the effect is not shown to be small either (no d33 or "
        "equivalence bound applies, or the CI is too wide)",
        shown,
    )


def compare(
    verdicts: pd.DataFrame, references: dict[str, dict[str, Any]], name: str
) -> Replication:
    """Compare a verdict table with per-hypothesis references."""
    rows = []
    for _, row in verdicts.iterrows():
        outcome, note, (ref_est, ref_low, ref_high) = _judge(row, references.get(row["id"]))
        rows.append(
            [
                row["id"],
                bool(row["exploratory"]),
                row["expected"],
                row["estimate"],
                row["ci_low"],
                row["ci_high"],
                row["verdict"],
                ref_est,
                ref_low,
                ref_high,
                outcome,
                note,
            ]
        )
    return Replication(pd.DataFrame(rows, columns=COLUMNS), name)


def _results_file(path: Path) -> dict[str, dict[str, Any]]:
    data = load_yaml(path)
    results = data.get("results")
    if not isinstance(results, dict):
        raise ConfigError(f"{path}: expected a top-level 'results' mapping")
    return results


def _planted(world: str) -> dict[str, dict[str, Any]]:
    from alignbf.engine.synthetic import load_world

    return {hid: {"direction": d} for hid, d in load_world(world).expected.items()}


def _run_references(other: Path) -> tuple[dict[str, dict[str, Any]], pd.DataFrame]:
    from alignbf.analysis.analyze import analyze_run

    theirs = analyze_run(other).verdicts
    refs = {}
    for _, row in theirs.iterrows():
        if row["verdict"] == "supported":
            refs[row["id"]] = {"estimate": row["estimate"], "ci": [row["ci_low"], row["ci_high"]]}
    return refs, theirs


def _models(run_dir: Path) -> dict[str, set[tuple[str, str]]]:
    with Store(run_dir, readonly=True) as store:
        versions = model_versions(store)
    out: dict[str, set[tuple[str, str]]] = {}
    for model, resolved, fingerprint in versions:
        out.setdefault(model, set()).add((str(resolved), str(fingerprint)))
    return out


def provider_drift(run_dir: Path, other: Path) -> list[str]:
    """Models whose resolved name or system fingerprint differ between two runs."""
    mine, theirs = _models(run_dir), _models(other)
    drift = []
    for model in sorted(set(mine) & set(theirs)):
        if mine[model] != theirs[model]:
            drift.append(f"{model}: {_versions(theirs[model])} -> {_versions(mine[model])}")
    return drift


def _versions(pairs: set[tuple[str, str]]) -> str:
    """``name (fingerprint fp), ...`` for the (resolved model, fingerprint) pairs of a run."""
    shown = []
    for resolved, fingerprint in sorted(pairs):
        name = resolved if resolved not in ("None", "") else "unnamed model"
        known = fingerprint not in ("None", "")
        shown.append(name + (f" (fingerprint {fingerprint})" if known else ""))
    return ", ".join(shown)


def replicate_run(run_dir: Path, against: str | Path | None = None) -> Replication:
    """Analyse ``run_dir`` and compare it with the reference (default: the paper's results)."""
    from alignbf.analysis.analyze import analyze_run

    verdicts = analyze_run(run_dir).verdicts
    target = str(against) if against is not None else str(assets.path("data", "paper_results.yaml"))
    if target.startswith("planted:"):
        return compare(verdicts, _planted(target.removeprefix("planted:")), target)
    path = Path(target)
    if (path / "run.sqlite").exists():
        refs, _ = _run_references(path)
        result = compare(verdicts, refs, str(path))
        result.drift = provider_drift(run_dir, path)
        if result.drift:
            failed = result.table["outcome"].isin(["not_replicated", "inconclusive"])
            result.table.loc[failed, "outcome"] = "drift"
            result.table.loc[failed, "note"] = "the model or its fingerprint changed between runs"
        return result
    if not path.exists():
        raise ConfigError(f"--against {target}: no such results file or run directory")
    return compare(verdicts, _results_file(path), str(path))
