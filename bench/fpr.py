"""Benchmark: false-positive rates of Study 2's preregistered tests on the null world.

Usage (from the repository root)::

    python bench/fpr.py [--analyses N] [--replicates R] [--seed S] [--start K]
                        [--world null] [--config study2] [--out DIR]
    python bench/fpr.py --load DIR          # analyse saved scores again, no simulation
    python bench/fpr.py --summarise DIR...  # pool the tests.csv of earlier runs

Each of the N analyses is one whole Study 2 made afresh: every simulation of the grid
(16 languages x 5 alignment ratios x R replicates, R = the study's 15 unless given) gets
its seed from the seed salt ``fpr:<S>:<analysis>``, the mechanism a preregistration lock
uses to salt a run's seeds (``grid.expand(seed_salt=...)``), so no two analyses share a
simulation, a seed or a pool of replicates: the N verdicts are independent. Analyses
are numbered from ``--start``, so runs with disjoint numbers pool (``--summarise``).

The path is the project's own, without a run directory:

* each study is simulated and scored in memory by ``alignbf.scoring.memory.
  simulate_scores`` (the study's turn loop answered by the world's synthetic model,
  scored as ``alignbf score`` scores a stored run); agent-level scores are made only
  when a hypothesis asks;
* the preregistration is evaluated as ``alignbf analyze`` evaluates it
  (``verdicts.evaluate`` per hypothesis, ``verdicts.decide_all``: Holm within each
  family, then each decision rule). Every analysis is decided twice, once with each
  binomial test of the ``count_languages`` hypotheses (``test: exact`` and ``midp``,
  redone on the same counts, Holm redone with their p-values).

``tests/integration/test_fpr_bench.py`` checks that those scores equal the ones of
``alignbf run`` + ``alignbf score`` on the same seeds.

Per hypothesis it reports the rejection rate ``fpr_<id>`` = P(p < alpha) with the
unadjusted p (the test's type I error: two-sided where the test is two-sided), the share
``supported_<id>`` of verdicts "supported" (Holm-adjusted p < alpha and the estimate on
the expected side: the rate of false confirmations), each with its binomial Monte-Carlo
SE sqrt(r (1 - r) / N), and ``fwer_<family>``, the share of analyses with any verdict
"supported" in the family: all with the binomial test the preregistration names
(``count_test=``), then the count hypotheses and families with the other test
(``fpr_<id>_exact``, ``fwer_<family>_exact``, ...). Out of ``--out DIR`` come
``tests.csv`` (one row per analysis, test and hypothesis, with p, Holm p, estimate,
statistic, df, verdict and note; written every 10 analyses) and ``scores.parquet``
(every analysis' simulation scores; both written every 10 analyses). ``--scope`` analyses
under another z-score reference; with ``--load`` the indices are recomputed from the saved
components, so one simulation can be analysed under every reference.

Cost: about 20-30 ms of CPU per simulation (generation, then scoring) plus about 2.5 s
per analysis (the mixed model and 100 per-language OLS fits); on a shared 2-core machine
at about 45% of a core, 28 s per analysis at R = 5. 200 analyses at R = 15 are 240,000
simulations: about 2 CPU hours.

Last line: ``fpr_<id>=... fpr_<id>_se=... supported_<id>=... supported_<id>_se=... ...
fwer_confirmatory=... count_test=midp analyses=N replicates=R world=... wall_s=...``
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from alignbf.analysis.estimators import Estimate  # noqa: E402
from alignbf.analysis.prereg import prereg_path  # noqa: E402
from alignbf.analysis.stats import sign_test  # noqa: E402
from alignbf.analysis.verdicts import Source, decide_all, evaluate  # noqa: E402
from alignbf.config import assets  # noqa: E402
from alignbf.config.hypotheses import CountLanguages, Hypothesis, Prereg, load_prereg  # noqa: E402
from alignbf.config.study import Study, load_languages, load_study  # noqa: E402
from alignbf.engine.synthetic import SyntheticModel, load_world  # noqa: E402
from alignbf.errors import ConfigError  # noqa: E402
from alignbf.scoring.indices import add_indices  # noqa: E402
from alignbf.scoring.memory import simulate_scores  # noqa: E402
from alignbf.scoring.scores import Scores  # noqa: E402

DERIVED = ("z_", "cpi", "di", "indices_version")
"""Prefixes of the columns ``add_indices`` makes: dropped from saved scores and made again."""
TESTS = ("exact", "midp")
"""The binomial tests of ``count_languages``: every analysis is decided once with each."""
NO_COUNT = "-"
"""The ``test`` of the records of a preregistration without count hypotheses."""


def _with_test(prereg: Prereg, test: str) -> Prereg:
    """The preregistration with every count_languages hypothesis on binomial test ``test``."""
    changed = [
        h.model_copy(update={"estimator": h.estimator.model_copy(update={"test": test})})
        if isinstance(h.estimator, CountLanguages)
        else h
        for h in prereg.hypotheses
    ]
    return prereg.model_copy(update={"hypotheses": changed})


def shipped_test(prereg: Prereg) -> str:
    """The binomial test the preregistration names for its counts (``-`` without counts)."""
    tests = {h.estimator.test for h in prereg.hypotheses if isinstance(h.estimator, CountLanguages)}
    if len(tests) > 1:
        raise ConfigError("the count hypotheses name different binomial tests; name one")
    return tests.pop() if tests else NO_COUNT


def _retested(h: Hypothesis, est: Estimate | None) -> Estimate | None:
    """A count hypothesis' estimate with its binomial test (``h``'s) redone on the same
    count; the per-group effects are not estimated again."""
    spec = h.estimator
    if est is None or not isinstance(spec, CountLanguages):
        return est
    frame = sign_test(
        int(est.statistic), est.n, spec.p_null, spec.alternative, h.ci, method=spec.test
    )
    kind = "mid-p" if spec.test == "midp" else "exact"
    note = est.note.replace("; mid-p binomial", "; exact binomial").replace(
        "; exact binomial", f"; {kind} binomial"
    )
    return Estimate.from_frame(frame, null=spec.p_null, note=note)


def _records(
    analysis: int, prereg: Prereg, rows: list[dict[str, Any]], test: str
) -> list[dict[str, Any]]:
    return [
        {
            "analysis": analysis,
            "id": h.id,
            "test": test,
            "family": h.family,
            "alpha": h.alpha,
            "p_val": row["p_val"],
            "p_adj": row["p_adj"],
            "estimate": row["estimate"],
            "statistic": row["statistic"],
            "df": row["df"],
            "verdict": row["verdict"],
            "note": row["note"],
        }
        for h, row in zip(prereg.hypotheses, rows, strict=True)
    ]


def analyse(
    analysis: int, prereg: Prereg, scores: Scores, languages: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The verdicts of one analysis, once per binomial test of :data:`TESTS` (the count
    hypotheses' tests redone on the same counts, the families adjusted again): one record
    per test and hypothesis, ``test`` naming the binomial test (``-`` without counts)."""
    source = Source(None, scores)
    pairs = [evaluate(h, source, languages) for h in prereg.hypotheses]
    counted = any(isinstance(h.estimator, CountLanguages) for h in prereg.hypotheses)
    out: list[dict[str, Any]] = []
    for test in TESTS if counted else (NO_COUNT,):
        variant = _with_test(prereg, test) if counted else prereg
        ests = [_retested(h, e) for h, (_, e) in zip(variant.hypotheses, pairs, strict=True)]
        rows = [dict(row) for row, _ in pairs]
        for h, row, est in zip(variant.hypotheses, rows, ests, strict=True):
            if est is not None and isinstance(h.estimator, CountLanguages):
                row.update(p_val=est.p_val, ci_low=est.ci_low, ci_high=est.ci_high, note=est.note)
        decide_all(variant, rows, ests)
        out += _records(analysis, variant, rows, test)
    return out


def _share(hits: pd.Series) -> tuple[float, float]:
    rate = float(hits.mean()) if len(hits) else math.nan
    return rate, math.sqrt(rate * (1 - rate) / len(hits)) if len(hits) else math.nan


def rates(tests: pd.DataFrame) -> pd.DataFrame:
    """Per hypothesis and test: rejection rate P(p < alpha) and share supported, each with
    its Monte-Carlo SE, and how many analyses could not estimate it."""
    out = []
    for (hid, test), group in tests.groupby(["id", "test"], sort=False):
        p = pd.to_numeric(group["p_val"], errors="coerce")
        rejection, rejection_se = _share(p < group["alpha"])
        supported, supported_se = _share(group["verdict"] == "supported")
        out.append(
            {
                "id": hid,
                "test": test,
                "analyses": len(group),
                "rejection": rejection,
                "rejection_se": rejection_se,
                "supported": supported,
                "supported_se": supported_se,
                "not_estimable": int(p.isna().sum()),
            }
        )
    return pd.DataFrame(out)


def familywise(tests: pd.DataFrame) -> dict[tuple[str, str], tuple[float, float]]:
    """Per family and test: the share of analyses with at least one verdict "supported"
    in the family, and its SE."""
    any_supported = (
        tests.assign(s=tests["verdict"] == "supported")
        .groupby(["family", "test", "analysis"])["s"]
        .any()
    )
    return {
        (str(f), str(t)): _share(g) for (f, t), g in any_supported.groupby(level=["family", "test"])
    }


@dataclass
class FprResult:
    """The benchmark's outcome."""

    tests: pd.DataFrame
    """One row per analysis, test and hypothesis (see :func:`analyse`)."""
    rates: pd.DataFrame
    """See :func:`rates`."""
    familywise: dict[tuple[str, str], tuple[float, float]]
    """See :func:`familywise`."""
    scores: pd.DataFrame
    """Every analysis' simulation scores (column ``analysis``)."""
    replicates: int
    world: str
    shipped: str
    """The binomial test the preregistration names (``-``: it has no count hypotheses)."""
    counts: tuple[str, ...]
    """The count_languages hypotheses."""


def _prereg(config: str | Path) -> tuple[Path, Study, Prereg]:
    config_path = assets.find_config(config)
    study = load_study(config_path)
    path = prereg_path(study, config_path)
    if path is None:
        raise ConfigError(f"{config_path}: names no preregistration")
    return config_path, study, load_prereg(path)


def _result(
    tests: pd.DataFrame, scores: pd.DataFrame, replicates: int, world: str, prereg: Prereg
) -> FprResult:
    counts = tuple(h.id for h in prereg.hypotheses if isinstance(h.estimator, CountLanguages))
    return FprResult(
        tests,
        rates(tests),
        familywise(tests),
        scores,
        replicates,
        world,
        shipped_test(prereg),
        counts,
    )


def false_positive_rates(
    config: str | Path = "study2",
    *,
    world: str = "null",
    analyses: int = 200,
    replicates: int | None = None,
    seed: int = 0,
    start: int = 0,
    load: pd.DataFrame | None = None,
    scope: str | None = None,
    on_analysis: Callable[[int, float, list[dict[str, Any]], list[pd.DataFrame]], None]
    | None = None,
) -> FprResult:
    """Simulate and analyse ``analyses`` independent studies (see the module docstring),
    numbered from ``start`` (the number is part of the seed salt, so runs with disjoint
    numbers are independent and can be pooled).

    ``load``: simulation scores saved by an earlier call (column ``analysis``), analysed
    again instead of simulating; their indices are computed again from the components, so
    a saved simulation can be analysed under another reference. ``scope``: the z-score
    reference (default: the study's). ``on_analysis(number, seconds, records, frames)`` is
    called after each analysis with the records and simulation scores so far.
    """
    _, study, prereg = _prereg(config)
    if replicates is not None:
        study = study.model_copy(update={"replicates": replicates})
    if scope is not None:
        scoring = study.scoring.model_copy(update={"zscore_scope": scope})
        study = study.model_copy(update={"scoring": scoring})
    languages = load_languages()
    agents = any(h.level == "agent" for h in prereg.hypotheses)
    if load is not None and agents:
        raise ConfigError("saved scores hold simulations only; agent-level hypotheses need them")
    model = SyntheticModel(load_world(world))
    records: list[dict[str, Any]] = []
    frames = []
    numbers = sorted(set(load["analysis"])) if load is not None else range(start, start + analyses)
    for i in numbers:
        began = time.perf_counter()
        if load is not None:
            rows = load[load["analysis"] == i].drop(columns="analysis")
            derived = [c for c in rows.columns if c.startswith(DERIVED)]
            rows = add_indices(rows.drop(columns=derived), study.scoring)
            scores = Scores(rows, pd.DataFrame(), [])
        else:
            scores = simulate_scores(study, model, f"fpr:{seed}:{i}", agents)
        frames.append(scores.simulations.assign(analysis=i))
        records += [{"seed": seed, **r} for r in analyse(i, prereg, scores, languages)]
        if on_analysis is not None:
            on_analysis(i, time.perf_counter() - began, records, frames)
    sims = pd.concat(frames, ignore_index=True)
    replicates = study.replicates if load is None else int(sims["replicate"].max()) + 1
    return _result(pd.DataFrame(records), sims, replicates, world, prereg)


def summarise(directories: list[Path], config: str | Path = "study2") -> FprResult:
    """The rates of the ``tests.csv`` (and ``scores.parquet``) of earlier runs, pooled."""
    tests = pd.concat([pd.read_csv(d / "tests.csv") for d in directories], ignore_index=True)
    if tests.duplicated(["seed", "analysis", "id", "test"]).any():
        raise ConfigError("the runs share analysis numbers (same --seed and --start?)")
    scores = pd.concat(
        [pd.read_parquet(d / "scores.parquet", columns=["replicate"]) for d in directories]
    )
    sizes = {int(scores["replicate"].max()) + 1}
    return _result(tests, scores, sizes.pop(), "saved", _prereg(config)[2])


def headline(result: FprResult, wall: float) -> str:
    """The benchmark's last line: the figures of the preregistration as written, then
    those of the count hypotheses (and families) on the other binomial test."""
    parts = []
    other = result.rates["test"] != result.shipped
    for row in pd.concat([result.rates[~other], result.rates[other]]).itertuples():
        on_other = row.test != result.shipped
        if on_other and row.id not in result.counts:
            continue  # the same test and p-value; only Holm within the family changed
        key = f"{row.id}_{row.test}" if on_other else str(row.id)
        parts += [
            f"fpr_{key}={row.rejection:.3f}",
            f"fpr_{key}_se={row.rejection_se:.3f}",
            f"supported_{key}={row.supported:.3f}",
            f"supported_{key}_se={row.supported_se:.3f}",
        ]
        if row.not_estimable:
            parts.append(f"not_estimable_{key}={row.not_estimable}")
    for (family, test), (share, se) in sorted(
        result.familywise.items(), key=lambda item: item[0][1] != result.shipped
    ):
        key = family if test == result.shipped else f"{family}_{test}"
        parts += [f"fwer_{key}={share:.3f}", f"fwer_{key}_se={se:.3f}"]
    parts += [
        f"count_test={result.shipped}",
        f"analyses={result.tests['analysis'].nunique()}",
        f"replicates={result.replicates}",
        f"world={result.world}",
        f"wall_s={wall:.0f}",
    ]
    return " ".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--analyses", type=int, default=200, help="independent studies")
    parser.add_argument(
        "--replicates", type=int, default=None, help="per cell (default: the study's)"
    )
    parser.add_argument("--seed", type=int, default=0, help="part of every seed salt")
    parser.add_argument("--start", type=int, default=0, help="number of the first analysis")
    parser.add_argument("--world", default="null", help="synthetic world (default: null)")
    parser.add_argument("--config", default="study2", help="study config (default: study2)")
    parser.add_argument(
        "--out", type=Path, help="write tests.csv (every 10 analyses) and scores.parquet here"
    )
    parser.add_argument("--load", type=Path, help="analyse DIR/scores.parquet, no simulation")
    parser.add_argument(
        "--scope", default=None, help="z-score reference (default: the study's zscore_scope)"
    )
    parser.add_argument(
        "--summarise", type=Path, nargs="+", metavar="DIR", help="pool the tests.csv of runs"
    )
    args = parser.parse_args(argv)
    began = time.perf_counter()
    if args.summarise:
        result = summarise(args.summarise, args.config)
    else:
        load = pd.read_parquet(args.load / "scores.parquet") if args.load else None
        total = len(set(load["analysis"])) if load is not None else args.analyses
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)

        def progress(
            i: int, seconds: float, records: list[dict[str, Any]], frames: list[pd.DataFrame]
        ) -> None:
            done = len({r["analysis"] for r in records})
            if done % 10 == 0 or done == total:
                elapsed = time.perf_counter() - began
                print(f"{done}/{total} analyses, last {seconds:.1f}s, {elapsed:.0f}s", flush=True)
                if args.out:
                    pd.DataFrame(records).to_csv(args.out / "tests.csv", index=False)
                    if load is None:
                        scores = pd.concat(frames, ignore_index=True)
                        scores.to_parquet(args.out / "scores.parquet", index=False)

        result = false_positive_rates(
            args.config,
            world=args.world,
            analyses=args.analyses,
            replicates=args.replicates,
            seed=args.seed,
            start=args.start,
            load=load,
            scope=args.scope,
            on_analysis=progress,
        )
    wall = time.perf_counter() - began
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(result.rates.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(headline(result, wall))


if __name__ == "__main__":
    main()
