"""``alignbf lexicon validate``: the scoring lexicon against known truth.

The synthetic generator writes each sentence from a phrase bank whose kind it knows
(:func:`alignbf.engine.synthetic.oracle_sentences` recovers it from the text), so a
synthetic run has an oracle label for every sentence of every reply. Per language and
category this module reports how the lexicon's sentence-level verdict (the sentence has
at least one hit of the category, echo filter applied) agrees with the oracle: precision,
recall, F1 and Cohen's kappa, for all agents and separately for alignment-instructed and
uninstructed agents (an error rate that differs between them biases every contrast). It
also reports how much of the hit mass inside restated instruction text the echo filter
removes, and the attenuation of the CPI and DI effects: Hedges' g of the highest vs the
lowest alignment ratio per language, computed from lexicon counts and from oracle counts
with the same units, reference and weights.

Only the channels whose hits count (``scoring.hit_channels``) are validated, and the
agreement figures come from the held-out half of the phrase banks (a fixed hash of each
bank entry, :func:`held_out`), so a lexicon revised while reading the other half is
still measured on text nobody tuned on.

A run with judge labels (``scoring.instrument`` judge or both) also gets the judge's
figures against the oracle, per utterance (the unit the judge labels) and over every
utterance (nothing was tuned on the banks' text for the judge): the same statistics per
language, category and agent group, and the aligned-minus-unaligned differences.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from alignbf.analysis.judge_agreement import with_oracle
from alignbf.analysis.stats import hedges_g, hedges_j
from alignbf.config.study import Study
from alignbf.engine.synthetic import ECHO, ORACLE_CATEGORIES, oracle_sentences
from alignbf.errors import AnalysisError
from alignbf.scoring.indices import add_indices
from alignbf.scoring.judge import complete_labels
from alignbf.scoring.lexicon import CATEGORIES, Echo, Lexicon, instruction_echo, load_lexicon
from alignbf.scoring.scores import load_scores, study_of
from alignbf.store.store import Store, write_atomic

AGREEMENT_COLUMNS = [
    "language", "category", "agents", "sentences", "positives", "predicted",
    "precision", "recall", "f1", "kappa", "false_positive_rate",
]  # fmt: skip
ATTENUATION_COLUMNS = [
    "language", "outcome", "n_high", "n_low", "g_lexicon", "g_oracle", "ratio",
    "difference", "difference_ci_low", "difference_ci_high",
]  # fmt: skip
BOOTSTRAP = 2000
"""Resamples of the paired bootstrap of g(lexicon) - g(oracle)."""
JUDGE_COLUMNS = [
    "language", "category", "agents", "utterances", "unlabelled", "positives", "predicted",
    "precision", "recall", "f1", "kappa", "false_positive_rate",
]  # fmt: skip


@dataclass
class Validity:
    """Lexicon-vs-oracle agreement of one synthetic run.

    Attributes:
        agreement: One row per language, category and agent group (``all``, ``aligned``,
            ``unaligned``): ``sentences``, ``positives`` (oracle), ``predicted`` (lexicon),
            ``precision``, ``recall``, ``f1``, ``kappa``.
        differential: Per language and category, the aligned-minus-unaligned difference in
            precision, recall and false-positive rate (``d_precision``, ``d_recall``,
            ``d_false_positive_rate``), the larger of the first two in absolute value
            (``max_abs``), and of the error rates alone with precision at one base rate
            (``d_precision_standardised``, ``max_abs_error``; see
            :func:`differential_table`).
        attenuation: Per language and outcome (``cpi``, ``di``): ``g_lexicon``, ``g_oracle``
            (highest vs lowest alignment ratio) and their ``ratio``.
        echo: Hits found inside restated instruction sentences without and with the echo
            filter, and the share removed.
        paths: Files written.
        judge: With judge labels, the judge against the oracle per utterance: one row per
            language, category and agent group (``utterances`` labelled and compared,
            ``unlabelled`` left out, then the columns of ``agreement``); else None.
        judge_differential: ``differential`` of the judge's figures (None without them).
    """

    agreement: pd.DataFrame
    differential: pd.DataFrame
    attenuation: pd.DataFrame
    echo: dict[str, float]
    paths: list[Path] = field(default_factory=list)
    judge: pd.DataFrame | None = None
    judge_differential: pd.DataFrame | None = None


def agreement(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1, Cohen's kappa and false-positive rate of two binary vectors.

    Precision depends on how common a category is; the false-positive rate (hits on
    sentences the oracle says lack the category) does not, so it compares conditions
    whose category rates differ by design.
    """
    truth, predicted = truth.astype(bool), predicted.astype(bool)
    n = len(truth)
    tp = float(np.sum(truth & predicted))
    pos, pred = float(truth.sum()), float(predicted.sum())
    precision = tp / pred if pred else math.nan
    recall = tp / pos if pos else math.nan
    f1 = 2 * tp / (pos + pred) if pos + pred else math.nan
    observed = float(np.mean(truth == predicted)) if n else math.nan
    expected = (pos * pred + (n - pos) * (n - pred)) / n**2 if n else math.nan
    kappa = (observed - expected) / (1 - expected) if n and expected < 1 else math.nan
    fpr = (pred - tp) / (n - pos) if n - pos else math.nan
    return dict(precision=precision, recall=recall, f1=f1, kappa=kappa, false_positive_rate=fpr)


def _messages(store: Store, channels: list[str]) -> pd.DataFrame:
    from alignbf.store.reader import hit_message_frame

    frame = hit_message_frame(store, channels)
    specs = {
        sim: json.loads(spec)["aligned"]
        for sim, spec in zip(frame["sim_id"], frame["spec"], strict=True)
    }
    frame["aligned"] = [
        bool(specs[s][a]) for s, a in zip(frame["sim_id"], frame["agent"], strict=True)
    ]
    return frame.drop(columns="spec")


def _echo_index(lexicon: Lexicon, study: Study) -> Echo | None:
    return instruction_echo(lexicon, study.scoring.echo.units(lexicon.language, lexicon.unit))


def held_out(entry: str) -> bool:
    """Whether a bank entry is in the held-out half (a fixed hash of its text).

    Figures reported for the lexicon come from this half; the other half may be read
    while a lexicon is revised.
    """
    return hashlib.blake2b(entry.encode(), digest_size=2).digest()[0] % 2 == 1


def label_sentences(messages: pd.DataFrame, study: Study) -> pd.DataFrame:
    """One row per oracle sentence: ids, ``kind``, and per category ``true_<c>``/``lex_<c>``.

    ``raw_hits`` counts the lexicon's hits in the sentence without the echo filter and
    ``hits`` with it.
    """
    rows = []
    for language, part in messages.groupby("language"):
        lexicon = load_lexicon(str(language))
        echo = _echo_index(lexicon, study)
        for sim_id, agent, aligned, text in zip(
            part["sim_id"], part["agent"], part["aligned"], part["text"], strict=True
        ):
            for kind, sentence, entry in oracle_sentences(str(language), text):
                counted = lexicon.count(sentence, echo)
                truth = ORACLE_CATEGORIES[kind]
                row = [language, sim_id, agent, aligned, kind, held_out(entry), counted.echoed]
                row += [sum(counted.counts.values())]
                row += [c in truth for c in CATEGORIES]
                row += [counted.counts[c] > 0 for c in CATEGORIES]
                rows.append(row)
    columns = ["language", "sim_id", "agent", "aligned", "kind", "held_out", "echoed", "hits"]
    columns += [f"true_{c}" for c in CATEGORIES] + [f"lex_{c}" for c in CATEGORIES]
    return pd.DataFrame(rows, columns=columns)


def agreement_table(sentences: pd.DataFrame) -> pd.DataFrame:
    """Agreement per language, category and agent group (see :class:`Validity`)."""
    out = []
    groups = {"all": None, "aligned": True, "unaligned": False}
    for language, part in sentences[sentences["held_out"]].groupby("language"):
        for name, flag in groups.items():
            rows = part if flag is None else part[part["aligned"] == flag]
            for category in CATEGORIES:
                truth = rows[f"true_{category}"].to_numpy()
                predicted = rows[f"lex_{category}"].to_numpy()
                stats = agreement(truth, predicted)
                out.append(
                    dict(
                        language=language,
                        category=category,
                        agents=name,
                        sentences=len(rows),
                        positives=int(truth.sum()),
                        predicted=int(predicted.sum()),
                        **stats,
                    )
                )
    return pd.DataFrame(out, columns=AGREEMENT_COLUMNS)


def judge_table(labels: pd.DataFrame) -> pd.DataFrame:
    """The judge against the oracle per language, category and agent group.

    ``labels`` has ``language``, ``aligned``, ``labelled``, the judge's category columns
    and ``oracle_<category>`` (see :func:`alignbf.analysis.judge_agreement.with_oracle`).
    """
    out = []
    groups = {"all": None, "aligned": True, "unaligned": False}
    for language, part in labels.groupby("language"):
        for name, flag in groups.items():
            rows = part if flag is None else part[part["aligned"] == flag]
            judged = rows[rows["labelled"].astype(bool)]
            for category in CATEGORIES:
                truth = judged[f"oracle_{category}"].to_numpy(dtype=int)
                predicted = judged[category].to_numpy(dtype=int)
                out.append({
                    "language": language, "category": category, "agents": name,
                    "utterances": len(judged), "unlabelled": len(rows) - len(judged),
                    "positives": int(truth.sum()), "predicted": int(predicted.sum()),
                    **agreement(truth, predicted),
                })  # fmt: skip
    return pd.DataFrame(out, columns=JUDGE_COLUMNS)


def _judge_labels(store: Store, study: Study, messages: pd.DataFrame) -> pd.DataFrame | None:
    """The judge's labels with the oracle's and each agent's instruction (None: no judge).

    Raises:
        AnalysisError: an utterance has no judge label yet.
    """
    if study.scoring.instrument == "lexicon":
        return None
    labels = complete_labels(store, study)
    aligned = messages[["sim_id", "agent", "aligned"]].drop_duplicates()
    return with_oracle(labels, store, study).merge(aligned, on=["sim_id", "agent"])


def differential_table(table: pd.DataFrame) -> pd.DataFrame:
    """Aligned-minus-unaligned precision, recall and false-positive rate per language and
    category, and precision at one base rate.

    Precision depends on how common the category is: with the same recall and
    false-positive rate, a group that says fewer coercive sentences gets a lower coercive
    precision. Misclassification is differential when recall or the false-positive rate
    depend on the group, so ``d_precision_standardised`` compares the precision both groups
    would have at the language's pooled base rate p, r p / (r p + f (1 - p)), and
    ``max_abs_error`` is the largest of that, ``d_recall`` and ``d_false_positive_rate`` in
    absolute value; ``max_abs`` is the larger of the raw ``d_precision`` and ``d_recall``.
    """
    count = "sentences" if "sentences" in table.columns else "utterances"
    pooled = table[table["agents"] == "all"].set_index(["language", "category"])
    base = pooled["positives"] / pooled[count]
    wide = table[table["agents"] != "all"].pivot_table(
        index=["language", "category"],
        columns="agents",
        values=["precision", "recall", "false_positive_rate"],
    )
    out = pd.DataFrame(index=wide.index)
    for measure in ("precision", "recall", "false_positive_rate"):
        out[f"d_{measure}"] = wide[(measure, "aligned")] - wide[(measure, "unaligned")]
    p = base.reindex(out.index)

    def at_base(group: str) -> pd.Series:
        hit = wide[("recall", group)] * p
        return hit / (hit + wide[("false_positive_rate", group)] * (1 - p))

    out["d_precision_standardised"] = at_base("aligned") - at_base("unaligned")
    out["max_abs"] = out[["d_precision", "d_recall"]].abs().max(axis=1)
    errors = ["d_precision_standardised", "d_recall", "d_false_positive_rate"]
    out["max_abs_error"] = out[errors].abs().max(axis=1)
    return out.reset_index()


def _oracle_scores(sentences: pd.DataFrame, sims: pd.DataFrame, study: Study) -> pd.DataFrame:
    """Per-simulation measures with oracle counts in place of lexicon hits."""
    counts = sentences.groupby("sim_id")[[f"true_{c}" for c in CATEGORIES]].sum()
    counts.columns = list(CATEGORIES)
    frame = sims.drop(columns=[c for c in sims.columns if c.startswith(("z_", "cpi", "di"))])
    frame = frame.drop(columns=[*CATEGORIES, *(f"{c}_rate" for c in CATEGORIES)])
    frame = frame.merge(counts, left_on="sim_id", right_index=True, how="left").fillna(
        dict.fromkeys(CATEGORIES, 0)
    )
    per = frame["units_hit"].where(frame["units_hit"] > 0)
    for c in CATEGORIES:
        frame[f"{c}_rate"] = frame[c] / per * 1000
    return add_indices(frame, study.scoring)


def _g_draws(
    high: np.ndarray, low: np.ndarray, picks_high: np.ndarray, picks_low: np.ndarray
) -> np.ndarray:
    """Hedges' g of each bootstrap resample (one row of ``picks_*`` per resample)."""
    a, b = high[picks_high], low[picks_low]
    na, nb = a.shape[1], b.shape[1]
    pooled = ((na - 1) * a.var(axis=1, ddof=1) + (nb - 1) * b.var(axis=1, ddof=1)) / (na + nb - 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (a.mean(axis=1) - b.mean(axis=1)) / np.sqrt(pooled)
    return hedges_j(float(na + nb - 2)) * np.where(pooled > 0, d, np.nan)


def attenuation_table(lexicon: pd.DataFrame, oracle: pd.DataFrame) -> pd.DataFrame:
    """Hedges' g of the highest vs lowest alignment ratio per language, lexicon vs oracle.

    ``difference`` is g(lexicon) - g(oracle), with a 95% percentile interval from a paired
    bootstrap (:data:`BOOTSTRAP` resamples of the simulations of each group, the same
    simulations for both g): how far the two may differ by which simulations were drawn,
    the indices' reference held fixed. A small oracle g makes ``ratio`` unstable; the
    interval says whether a gap is more than that.
    """
    out = []
    for language, part in lexicon.groupby("language"):
        base = part[part["individuation_ratio"] == part["individuation_ratio"].min()]
        high, low = base["alignment_ratio"].max(), base["alignment_ratio"].min()
        if high == low:
            continue
        ids_high = base.loc[base["alignment_ratio"] == high, "sim_id"]
        ids_low = base.loc[base["alignment_ratio"] == low, "sim_id"]
        if min(len(ids_high), len(ids_low)) < 2:
            continue
        for outcome in ("cpi", "di"):
            seed = int.from_bytes(hashlib.blake2b(f"{language}:{outcome}".encode()).digest()[:4])
            rng = np.random.default_rng(seed)
            picks_high = rng.integers(0, len(ids_high), (BOOTSTRAP, len(ids_high)))
            picks_low = rng.integers(0, len(ids_low), (BOOTSTRAP, len(ids_low)))
            g, draws = {}, {}
            for name, frame in (("lexicon", lexicon), ("oracle", oracle)):
                values = frame.set_index("sim_id")[outcome]
                x, y = values.loc[ids_high], values.loc[ids_low]
                g[name] = float(hedges_g(x, y)["estimate"].iloc[0])
                draws[name] = _g_draws(x.to_numpy(), y.to_numpy(), picks_high, picks_low)
            ratio = g["lexicon"] / g["oracle"] if g["oracle"] else math.nan
            gap = draws["lexicon"] - draws["oracle"]
            gap = gap[np.isfinite(gap)]
            ci = np.percentile(gap, [2.5, 97.5]) if gap.size else [math.nan, math.nan]
            out.append(
                dict(
                    language=language,
                    outcome=outcome,
                    n_high=len(ids_high),
                    n_low=len(ids_low),
                    g_lexicon=g["lexicon"],
                    g_oracle=g["oracle"],
                    ratio=ratio,
                    difference=g["lexicon"] - g["oracle"],
                    difference_ci_low=float(ci[0]),
                    difference_ci_high=float(ci[1]),
                )
            )
    return pd.DataFrame(out, columns=ATTENUATION_COLUMNS)


def validate_lexicon(run_dir: Path) -> Validity:
    """Compare a synthetic run's lexicon verdicts with the generator's oracle labels.

    Writes ``analysis/lexicon_agreement.csv``, ``lexicon_differential.csv`` and
    ``lexicon_attenuation.csv`` under the run, and with judge labels
    ``judge_oracle_agreement.csv`` and ``judge_oracle_differential.csv``.

    Raises:
        AnalysisError: not a run, or not a synthetic run (only those carry an oracle).
    """
    if not (run_dir / "run.sqlite").exists():
        raise AnalysisError(f"{run_dir}: not a run directory (no run.sqlite)")
    store = Store(run_dir, readonly=True)
    try:
        backend = store.get("backend") or ""
        if not backend.startswith("synthetic"):
            raise AnalysisError(
                f"{run_dir}: backend {backend!r} has no oracle labels; lexicon validate needs "
                "a synthetic run (human coding validates real transcripts)"
            )
        study = study_of(store)
        messages = _messages(store, list(study.scoring.hit_channels))
        sentences = label_sentences(messages, study)
        judged = _judge_labels(store, study, messages)
    finally:
        store.close()
    if sentences.empty:
        raise AnalysisError(f"{run_dir}: no scored sentence to validate")
    table = agreement_table(sentences)
    sims = load_scores(run_dir).simulations
    echoes = sentences[sentences["kind"] == ECHO]
    raw = float((echoes["hits"] + echoes["echoed"]).sum())
    echo = {
        "echo_sentences": float(len(echoes)),
        "hits_without_filter": raw,
        "hits_with_filter": float(echoes["hits"].sum()),
        "removed_share": float(echoes["echoed"].sum()) / raw if raw else math.nan,
    }
    validity = Validity(
        agreement=table,
        differential=differential_table(table),
        attenuation=attenuation_table(sims, _oracle_scores(sentences, sims, study)),
        echo=echo,
    )
    tables = [
        ("lexicon_agreement", validity.agreement),
        ("lexicon_differential", validity.differential),
        ("lexicon_attenuation", validity.attenuation),
    ]
    if judged is not None:
        validity.judge = judge_table(judged)
        validity.judge_differential = differential_table(validity.judge)
        tables += [
            ("judge_oracle_agreement", validity.judge),
            ("judge_oracle_differential", validity.judge_differential),
        ]
    out = run_dir / "analysis"
    out.mkdir(exist_ok=True)
    for name, frame in tables:
        path = out / f"{name}.csv"
        write_atomic(path, frame.to_csv(index=False))
        validity.paths.append(path)
    return validity


def oracle_codes(run_dir: Path) -> pd.DataFrame:
    """The oracle's codes of a run's coding sample: per id, 1 for each category that one
    of the utterance's sentences expresses (synthetic runs only)."""
    from alignbf.scoring.coding import read_key
    from alignbf.store.reader import agent_texts

    key = read_key(run_dir)
    store = Store(run_dir, readonly=True)
    try:
        texts = agent_texts(store)
    finally:
        store.close()
    rows = []
    for uid, sim, turn, agent, channel, language in key[
        ["id", "sim_id", "turn", "agent", "channel", "language"]
    ].itertuples(index=False):
        text = texts[(sim, int(turn), int(agent), channel)]
        found = {
            c for kind, _, _ in oracle_sentences(language, text) for c in ORACLE_CATEGORIES[kind]
        }
        rows.append({"id": uid, **{c: int(c in found) for c in CATEGORIES}})
    return pd.DataFrame(rows)


def simulate_coders(run_dir: Path, coders: int, error_rate: float, seed: int = 0) -> list[Path]:
    """Coded files of ``coders`` simulated coders: the oracle's codes, each code flipped
    independently with probability ``error_rate`` (to test the agreement statistics
    against known truth). Written as ``code/simulated_coder_<k>.csv``."""
    truth = oracle_codes(run_dir)
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(1, coders + 1):
        coded = truth.copy()
        for c in CATEGORIES:
            flip = rng.random(len(coded)) < error_rate
            coded[c] = np.where(flip, 1 - coded[c], coded[c])
        coded["coder"] = f"simulated-{k}"
        path = run_dir / "code" / f"simulated_coder_{k}.csv"
        write_atomic(path, coded.to_csv(index=False))
        paths.append(path)
    return paths
