"""Human coding of a run's utterances: a stratified sample and the coded files read back.

``alignbf code sample RUN --per-language N`` draws N utterances per language from the
``ok`` simulations, stratified by channel and by the lexicon's verdict (the set of
categories it finds, or none), so rare outcomes are present: each stratum is shuffled
(seeded) and strata are taken in turn until N are drawn. ``RUN/code/`` then holds:

* ``sample.csv`` (and ``sample.xlsx`` where openpyxl is installed), for coders: ``id,
  language, channel, context, text`` and an empty column per category plus ``note``.
  The condition (alignment, individuation, model) and the lexicon's verdict are
  **hidden**; ``context`` is the line the speaker answered (the previous speaker's talk
  in that turn, else the facility's announcement).
* ``key.csv``, not for coders: per id the simulation, turn, agent, condition and the
  lexicon's verdict (``lex_<category>``).
* ``manifest.json``: the seed, N, the strata counts, the SHA-256 of each language's
  codebook (``data/codebook/<lang>.md``) and the alignbf version.

:func:`read_codes` reads a coded file back, refusing with one line (file and row) a file
whose ids or columns do not match the sample or whose codes are not 0/1;
:func:`judge_codes` gives the judge's labels of the sampled utterances, for a run that has
a judge.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from alignbf import __version__
from alignbf.config import assets
from alignbf.config.study import EchoFilter, Study
from alignbf.errors import AnalysisError, ConfigError
from alignbf.scoring.judge import label_frame
from alignbf.scoring.lexicon import CATEGORIES, instruction_echo, load_lexicon
from alignbf.scoring.scores import study_of
from alignbf.store import reader
from alignbf.store.store import Store, write_atomic

SAMPLE_COLUMNS = ["id", "language", "channel", "context", "text", *CATEGORIES, "note"]
KEY_COLUMNS = ["id", "sim_id", "turn", "agent", "language", "channel", "alignment_ratio",
               "individuation_ratio", "model", "aligned", "individuated",
               *(f"lex_{c}" for c in CATEGORIES)]  # fmt: skip


@dataclass
class CodingSample:
    """A drawn sample: the coder-facing rows, the hidden key and the files written."""

    sample: pd.DataFrame
    key: pd.DataFrame
    manifest: dict[str, Any]
    paths: list[Path]


def codebook_file(language: str) -> Path:
    """The codebook of a language (the project's, else the built-in one)."""
    return assets.path("data", "codebook", f"{language}.md")


def _utterances(store: Store) -> pd.DataFrame:
    frame = reader.coding_messages(store)
    if frame.empty:
        raise AnalysisError(f"{store.dir}: no message of an ok simulation to sample")
    return frame


def _contexts(frame: pd.DataFrame) -> list[str]:
    """The line each agent utterance answers: the last talk before it in its turn, else the
    facility's announcement of the turn."""
    event: dict[tuple[str, int], str] = {}
    talk: dict[tuple[str, int], list[tuple[int, str]]] = defaultdict(list)
    for sim, turn, agent, channel, text in frame[
        ["sim_id", "turn", "agent", "channel", "text"]
    ].itertuples(index=False):
        if agent < 0:
            event[(sim, turn)] = text
        elif channel == "talk":
            talk[(sim, turn)].append((agent, text))
    out = []
    for sim, turn, agent in frame[["sim_id", "turn", "agent"]].itertuples(index=False):
        before = [t for a, t in talk[(sim, turn)] if a < agent]
        out.append(before[-1] if before else event.get((sim, turn), ""))
    return out


def _verdicts(frame: pd.DataFrame, echo: EchoFilter) -> pd.DataFrame:
    flags = {c: [] for c in CATEGORIES}  # type: dict[str, list[bool]]
    for language, part in frame.groupby("language", sort=False):
        lexicon = load_lexicon(str(language))
        index = instruction_echo(lexicon, echo.units(str(language), lexicon.unit))
        for text in part["text"]:
            counts = lexicon.count(text, index).counts
            for c in CATEGORIES:
                flags[c].append(counts[c] > 0)
    ordered = frame.sort_values("language", kind="stable")
    verdicts = pd.DataFrame({f"lex_{c}": v for c, v in flags.items()}, index=ordered.index)
    return verdicts.reindex(frame.index)


def _draw(part: pd.DataFrame, n: int, rng: random.Random) -> list[int]:
    strata: dict[str, list[int]] = defaultdict(list)
    for index, channel, outcome in part[["channel", "outcome"]].itertuples():
        strata[f"{channel}|{outcome}"].append(index)
    pools = [strata[k] for k in sorted(strata)]
    for pool in pools:
        rng.shuffle(pool)
    chosen: list[int] = []
    while len(chosen) < n and any(pools):
        for pool in pools:
            if pool and len(chosen) < n:
                chosen.append(pool.pop())
    return chosen


def draw_sample(store: Store, per_language: int, seed: int, echo: EchoFilter) -> CodingSample:
    """Draw the stratified sample of an open store (see the module docstring)."""
    frame = _utterances(store)
    frame["context"] = _contexts(frame)
    frame = frame[frame["agent"] >= 0].reset_index(drop=True)
    frame = frame.join(_verdicts(frame, echo))
    found = frame[[f"lex_{c}" for c in CATEGORIES]].to_numpy()
    frame["outcome"] = ["+".join(c for c, f in zip(CATEGORIES, row, strict=True) if f) or "none"
                        for row in found]  # fmt: skip
    rng = random.Random(f"code-sample:{seed}")
    chosen = [i for lang in sorted(set(frame["language"])) for i in
              _draw(frame[frame["language"] == lang], per_language, rng)]  # fmt: skip
    picked = frame.loc[chosen].copy()
    specs = {s: json.loads(spec) for s, spec in zip(picked["sim_id"], picked["spec"], strict=True)}
    picked["aligned"] = [
        specs[s]["aligned"][a] for s, a in zip(picked["sim_id"], picked["agent"], strict=True)
    ]
    picked["individuated"] = [
        specs[s]["individuated"][a] for s, a in zip(picked["sim_id"], picked["agent"], strict=True)
    ]
    picked["id"] = [f"u{k:05d}" for k in range(1, len(picked) + 1)]
    sample = picked[["id", "language", "channel", "context", "text"]].copy()
    for column in (*CATEGORIES, "note"):
        sample[column] = ""
    strata = picked.groupby(["language", "channel", "outcome"]).size()
    manifest = {
        "seed": seed,
        "per_language": per_language,
        "utterances": len(picked),
        "strata": {" ".join(map(str, k)): int(v) for k, v in strata.items()},
        "codebooks": {
            lang: hashlib.sha256(codebook_file(lang).read_bytes()).hexdigest()
            if codebook_file(lang).exists() else None
            for lang in sorted(set(picked["language"]))
        },
        "alignbf": __version__,
    }  # fmt: skip
    return CodingSample(
        sample.reset_index(drop=True), picked[KEY_COLUMNS].reset_index(drop=True), manifest, []
    )


def write_sample(run_dir: Path, drawn: CodingSample) -> list[Path]:
    """Write ``code/sample.csv`` (and ``.xlsx``), ``key.csv`` and ``manifest.json``."""
    out = run_dir / "code"
    out.mkdir(exist_ok=True)
    paths = [out / "sample.csv", out / "key.csv", out / "manifest.json"]
    write_atomic(paths[0], drawn.sample.to_csv(index=False))
    write_atomic(paths[1], drawn.key.to_csv(index=False))
    write_atomic(paths[2], json.dumps(drawn.manifest, indent=2, ensure_ascii=False) + "\n")
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        return paths
    drawn.sample.to_excel(out / "sample.xlsx", index=False)
    return [*paths, out / "sample.xlsx"]


def sample_run(run_dir: Path, per_language: int, seed: int = 0) -> CodingSample:
    """Draw and write a coding sample of a run (read-only on the store)."""
    if not (run_dir / "run.sqlite").exists():
        raise AnalysisError(f"{run_dir}: not a run directory (no run.sqlite)")
    with Store(run_dir, readonly=True) as store:
        drawn = draw_sample(store, per_language, seed, study_of(store).scoring.echo)
    drawn.paths = write_sample(run_dir, drawn)
    return drawn


def read_key(run_dir: Path) -> pd.DataFrame:
    """The hidden key of a run's coding sample."""
    path = run_dir / "code" / "key.csv"
    if not path.exists():
        raise AnalysisError(f"{run_dir}: no coding sample; run `alignbf code sample {run_dir}`")
    return pd.read_csv(path)


def judge_codes(store: Store, study: Study, key: pd.DataFrame) -> pd.DataFrame | None:
    """The judge's labels of a sample's utterances, in the order of ``key``; None when
    the run's ``scoring.instrument`` (``study``, as recorded in the run) is the lexicon
    alone.

    Columns: ``judged`` (the utterance is one the judge labels: a hit channel of an ``ok``
    simulation), ``labelled``, ``reason`` and the judge's 0/1 per category (NaN when not
    labelled).

    Raises:
        AnalysisError: a sampled utterance the judge labels has no label yet.
    """
    if study.scoring.instrument == "lexicon":
        return None
    labels = label_frame(store, study)
    keys = ["sim_id", "turn", "agent", "channel"]
    wanted = labels[[*keys, "labelled", "reason", *CATEGORIES]]
    merged = key[keys].merge(wanted, on=keys, how="left", indicator=True)
    merged["judged"] = merged.pop("_merge") == "both"
    missing = int((merged["judged"] & merged["labelled"].isna()).sum())
    if missing:
        raise AnalysisError(
            f"{store.dir}: {missing} of the {int(merged['judged'].sum())} sampled utterances the "
            f"judge labels have no label yet; run `alignbf score {store.dir}` first"
        )
    return merged.drop(columns=keys)


def read_codes(path: Path, ids: list[str]) -> pd.DataFrame:
    """A coded file: one row per sample id, 0/1 per category (one-line errors).

    Raises:
        ConfigError: a missing file or column, a column that is no codebook category, an
            unknown, missing or repeated id, a code that is not 0 or 1, or a second coder
            in one file; the message names the file and the row.
    """
    if not path.exists():
        raise ConfigError(f"{path}: file not found")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("id", *CATEGORIES) if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(
                f"{path}: missing column {missing[0]!r} (expected id, {', '.join(CATEGORIES)})"
            )
        allowed = {*SAMPLE_COLUMNS, "coder"}
        extra = [c for c in reader.fieldnames or [] if c not in allowed]
        if extra:
            raise ConfigError(
                f"{path}: column {extra[0]!r} is not a codebook category "
                f"({', '.join(CATEGORIES)}) nor a sample column"
            )
        coders: set[str] = set()
        known, seen, rows = set(ids), set(), []
        for number, row in enumerate(reader, start=2):
            uid = (row["id"] or "").strip()
            if uid not in known:
                raise ConfigError(f"{path}: row {number}: id {uid!r} is not in the sample")
            if uid in seen:
                raise ConfigError(f"{path}: row {number}: id {uid!r} is coded twice")
            seen.add(uid)
            if "coder" in row:
                coders.add((row["coder"] or "").strip())
                if len(coders) > 1:
                    raise ConfigError(
                        f"{path}: row {number}: a second coder {row['coder']!r}; one file per coder"
                    )
            codes = {}
            for c in CATEGORIES:
                value = (row[c] or "").strip()
                if value not in ("0", "1"):
                    raise ConfigError(f"{path}: row {number}: {c} is {value!r}; code 0 or 1")
                codes[c] = int(value)
            rows.append({"id": uid, **codes})
    absent = sorted(known - seen)
    if absent:
        raise ConfigError(f"{path}: {len(absent)} sample id(s) not coded, e.g. {absent[0]!r}")
    return pd.DataFrame(rows).set_index("id").loc[ids].reset_index()
