"""Where an analysis comes from: config and prereg hashes, models, tokens, cost, deviations.

Read-only views of ``manifest.json`` and of the ``calls`` and ``deviations`` tables of
a run, for the report's Provenance and Deviations sections.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from alignbf.store import reader
from alignbf.store.store import Store

if TYPE_CHECKING:
    from alignbf.analysis.analyze import Analysis

MANIFEST_KEYS = ("config_sha256", "config_path", "alignbf_version", "python", "backend")


def _manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "missing"


def _lock(path: Path) -> str:
    """``<lock file> (root <hash>)``, or a note that the preregistration is not locked."""
    if not path.exists():
        return "none (not locked)"
    try:
        root = json.loads(path.read_text(encoding="utf-8")).get("root", "?")
    except (OSError, ValueError, AttributeError):
        root = "unreadable"
    return f"{path} (root {root})"


def _score_versions(analysis: Analysis) -> dict[str, str]:
    sims = analysis.scores.simulations
    columns = [c for c in sims.columns if c.endswith("_version")]
    return {c: ", ".join(sorted(map(str, sims[c].dropna().unique()))) for c in columns}


def run_facts(analysis: Analysis) -> dict[str, str]:
    """Facts of the run: manifest hashes and versions, prereg hash, lock and score versions.

    Returns:
        fact -> value, in display order: the manifest's ``config_sha256``,
        ``config_path``, ``alignbf_version``, ``python``, ``backend``, every manifest key
        naming a lock, package versions, the prereg path, SHA-256 and lock file (with its
        root hash), the inputs used and the measure, index and lexicon versions recorded
        with the scores.
    """
    manifest = _manifest(analysis.run_dir)
    facts = {key: str(manifest[key]) for key in MANIFEST_KEYS if key in manifest}
    facts |= {k: str(v) for k, v in manifest.items() if "lock" in k}
    packages = manifest.get("packages") or {}
    if packages:
        facts["packages"] = ", ".join(f"{k} {v}" for k, v in sorted(packages.items()))
    facts["prereg"] = str(analysis.prereg_path)
    facts["prereg_sha256"] = _sha256(analysis.prereg_path)
    facts["prereg_lock"] = _lock(analysis.prereg_path.with_suffix(".lock.json"))
    for name, path in analysis.inputs.items():
        facts[f"input {name}"] = "not found" if path is None else str(path)
    return facts | _score_versions(analysis)


def models_used(run_dir: Path) -> pd.DataFrame:
    """One row per model and endpoint that answered calls in the run.

    Returns:
        Columns ``model``, ``resolved_model``, ``endpoint``, ``system_fingerprints``
        (distinct values, comma-separated), ``calls``, ``prompt_tokens``,
        ``completion_tokens``, ``cache_hit_share`` (prompt tokens read from the
        provider's prompt cache / prompt tokens, over the calls that reported it;
        "not reported" otherwise) and ``cost_usd`` ("unknown" when any call has no price).
    """
    with Store(run_dir, readonly=True) as store:
        frame = reader.usage_by_model(store)
    frame["cache_hit_share"] = [
        f"{cached / whole:.1%}" if whole and whole == whole else "not reported"
        for cached, whole in zip(frame["cached"], frame["reported"], strict=True)
    ]
    frame = frame.drop(columns=["cached", "reported"])
    frame["cost_usd"] = [
        "unknown" if unpriced else f"{cost or 0:.2f}"
        for cost, unpriced in zip(frame["cost"], frame["unpriced"], strict=True)
    ]
    return frame.drop(columns=["cost", "unpriced"])


def deviations(run_dir: Path) -> pd.DataFrame:
    """The run's ``deviations`` table.

    Returns:
        Columns ``at`` (UTC, ISO 8601), ``kind`` and ``detail``, oldest first.
    """
    with Store(run_dir, readonly=True) as store:
        rows = reader.deviations(store)
    stamped = [
        (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(d.at)), d.kind, d.detail) for d in rows
    ]
    return pd.DataFrame(stamped, columns=["at", "kind", "detail"])
