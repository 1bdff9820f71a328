"""``alignbf replicate``: does a run reproduce a reference, hypothesis by hypothesis?

The reference is one of:

* a results file (``data/paper_results.yaml``: per hypothesis id the reported estimate,
  its direction, an optional CI or equivalence band, group sizes to derive a CI for g);
* ``planted:<world>``: the directions a synthetic world plants (its ``expected`` block);
* another run directory, analysed the same way.

Per confirmatory hypothesis: **replicated** when the run's verdict is *supported* (the
preregistered test is significant in the expected direction) and, when the reference
gives a magnitude, the estimate lies inside the reference's CI or within its
equivalence band; **not_replicated** when the verdict is *not_supported* or the estimate
falls outside that band; **inconclusive** otherwise. Against another run, a hypothesis
that fails while the model or its system fingerprint changed between the runs is
**drift**, kept apart from non-replication. Exit code: 0 all replicated, 1 any
not replicated, 2 otherwise (inconclusive or drift). Exploratory hypotheses are shown
and never counted.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from alignbf.analysis.stats import g_interval
from alignbf.config import assets
from alignbf.config.yamlfile import load_yaml
from alignbf.errors import ConfigError

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


def _judge(row: pd.Series, ref: dict[str, Any] | None) -> tuple[str, str, tuple[Any, ...]]:
    if ref is None:
        return "no_reference", "", (None, None, None)
    band = _band(ref)
    shown = (ref.get("estimate"), *(band or (None, None)))
    verdict = row["verdict"]
    if verdict == "descriptive":
        return "descriptive", "not tested", shown
    if verdict == "not_supported":
        return "not_replicated", "the run contradicts the expected direction", shown
    if verdict != "supported":
        return "inconclusive", str(row.get("note") or "the test is not significant"), shown
    if band is not None and not (band[0] <= row["estimate"] <= band[1]):
        return (
            "not_replicated",
            "direction replicates; the estimate is outside the reference band",
            shown,
        )
    return "replicated", "", shown


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
    conn = sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True)
    try:
        out: dict[str, set[tuple[str, str]]] = {}
        for model, resolved, fingerprint in conn.execute(
            "SELECT DISTINCT model, resolved_model, system_fingerprint FROM calls"
        ):
            out.setdefault(model, set()).add((str(resolved), str(fingerprint)))
        return out
    finally:
        conn.close()


def provider_drift(run_dir: Path, other: Path) -> list[str]:
    """Models whose resolved name or system fingerprint differ between two runs."""
    mine, theirs = _models(run_dir), _models(other)
    drift = []
    for model in sorted(set(mine) & set(theirs)):
        if mine[model] != theirs[model]:
            drift.append(f"{model}: {sorted(theirs[model])} -> {sorted(mine[model])}")
    return drift


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
