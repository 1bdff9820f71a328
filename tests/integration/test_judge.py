"""The judge instrument end to end: paid calls, faults, crashes, resume, agreement.

Simulations run in-process on the synthetic backend (fast); the judge's calls go to the
loopback server (``alignbf score RUN --base-url``), whose ledger is the ground truth for
what was sent and delivered, or in-process where only the bookkeeping is at stake.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from alignbf.analysis.analyze import analyze_run
from alignbf.analysis.judge_agreement import agreement_table, expected_kappa, with_oracle
from alignbf.api import run_command, score_command
from alignbf.config import assets
from alignbf.config.rubric import load_rubric
from alignbf.engine.synthetic import SyntheticBackend, load_world
from alignbf.errors import AnalysisError
from alignbf.report.report import write_report
from alignbf.scoring.judge import judge_request, utterances
from alignbf.scoring.scores import score_run, study_of
from alignbf.store.store import Store
from alignbf.testing.answers import prompt_tokens
from tests.conftest import cli
from tests.integration.conftest import FAST_ENV, Server

LOOPBACK = {"base_url": "http://127.0.0.1:9/v1", "model": "synthetic"}
ENDPOINTS = {
    "endpoints": {
        "sim": {**LOOPBACK, "serves": "llama-3.3-70b", "price_input_per_mtok": 0.0,
                "price_output_per_mtok": 0.0},
        "judge": {**LOOPBACK, "serves": "judge-m", "price_input_per_mtok": 0.1,
                  "price_output_per_mtok": 0.2},
    }
}  # fmt: skip


def write_study(tmp_path: Path, *, instrument: str = "both", **changes: Any) -> Path:
    """Synthetic Study 1 made small (3 agents, 3 turns, 2 ratios) with a judge."""
    data = yaml.safe_load(assets.path("configs", "study1.yaml").read_text())
    data.update(name="judged", agents={"count": 3, "target": 3}, replicates=1, prereg=None)
    data["conversation"]["turns"] = 3
    data["factors"]["alignment_ratios"] = [0.0, 1.0]
    data["sampling"]["max_tokens"] = 64
    data["scoring"].update(instrument=instrument, judge={"model": "judge-m", "seed": 5})
    data["endpoints"] = {"llama-3.3-70b": "sim", "judge-m": "judge"}
    data.update(endpoints_file="endpoints.yaml", budget={}, **changes)
    (tmp_path / "endpoints.yaml").write_text(yaml.safe_dump(ENDPOINTS))
    path = tmp_path / "judged.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    assert run_command(write_study(tmp_path), world="paper", run_dir=run_dir).complete
    return run_dir


def _utterances(run_dir: Path) -> int:
    with sqlite3.connect(run_dir / "run.sqlite") as conn:
        row = conn.execute(
            "SELECT count(*) FROM messages m JOIN simulations s USING (sim_id) WHERE "
            "s.status = 'ok' AND m.agent >= 0 AND m.channel IN ('talk', 'whisper')"
        ).fetchone()
    return int(row[0])


def _judge_calls(run_dir: Path) -> int:
    with sqlite3.connect(run_dir / "run.sqlite") as conn:
        row = conn.execute("SELECT count(*) FROM calls WHERE flags LIKE '%judge%'").fetchone()
    return int(row[0])


def _labels(run_dir: Path) -> pd.DataFrame:
    frame = pd.read_parquet(run_dir / "scores" / "judge_labels.parquet")
    return frame.sort_values(["sim_id", "turn", "agent", "channel"]).reset_index(drop=True)


def _score(run_dir: Path, server: Server, **env: str) -> Any:
    args = ["score", str(run_dir), "--base-url", server.url, "--concurrency", "8"]
    return cli(*args, env={**FAST_ENV, **env}, timeout=120)


def _delivered(entries: list[dict[str, Any]]) -> Counter[str]:
    return Counter(e["fingerprint"] for e in entries if e["delivered"])


def test_faults_judge_every_utterance_once_with_the_labels_of_a_clean_run(
    run_dir: Path, tmp_path: Path, serve: Callable[..., Server]
) -> None:
    clean_dir = tmp_path / "clean"
    shutil.copytree(run_dir, clean_dir)
    world = load_world("paper").model_copy(update={"judge_error_rate": 0.1})
    score_run(clean_dir, backend=SyntheticBackend(world))  # fault-free, in-process
    faulty = serve("--fault-rate", "0.2", "--fault-seed", "4", "--judge-error-rate", "0.1",
                   "--stall-s", "1.5")  # fmt: skip
    n = _utterances(run_dir)
    done = _score(run_dir, faulty)
    assert done.returncode == 0, done.stderr
    assert f"judge: {n} utterances, {n} labelled, 0 unlabelled; {n} calls sent" in done.stdout
    ledger = faulty.ledger()
    assert sum(e["fault"] is not None for e in ledger) >= 5  # the faults did happen
    delivered = _delivered(ledger)
    assert len(delivered) == n and set(delivered.values()) == {1}
    assert _judge_calls(run_dir) == n
    labels = _labels(run_dir)
    pd.testing.assert_frame_equal(labels, _labels(clean_dir))
    assert labels["labelled"].all()
    assert 0 < (labels["coercive"] != labels["lex_coercive"]).sum() < n


def test_sigkill_mid_judging_resumes_without_resending_stored_labels(
    run_dir: Path, serve: Callable[..., Server]
) -> None:
    server = serve()
    n = _utterances(run_dir)
    killed = _score(run_dir, server, ALIGNBF_TEST_CRASHPOINT="after_commit_before_use:6")
    assert killed.returncode == -9, killed.stderr
    stored = _judge_calls(run_dir)
    assert 0 < stored < n
    before = len(server.ledger())
    done = score_command(run_dir, base_url=server.url).judging  # the same command, in-process
    assert done is not None and (done.sent, done.stored) == (n - stored, stored)
    after = server.ledger()[before:]
    assert sum(_delivered(after).values()) == n - stored
    assert _judge_calls(run_dir) == n and _labels(run_dir)["labelled"].all()
    again = score_command(run_dir, base_url=server.url).judging
    assert again is not None and again.sent == 0 and again.stored == n
    assert len(server.ledger()) == before + len(after)


class Garbled:
    """The synthetic judge, but some replies are not JSON of the expected shape."""

    def __init__(self, always: int, first: int) -> None:
        self.inner = SyntheticBackend(load_world("paper"))
        self.always, self.first = always, first
        self.sent: Counter[tuple[str, int, int, str]] = Counter()

    def endpoint_id(self, model: str) -> str:
        return self.inner.endpoint_id(model)

    async def complete(self, request: Any) -> Any:
        completion = await self.inner.complete(request)
        who = (request.sim_id, request.agent, request.turn, request.messages[-1]["content"])
        self.sent[who] += 1
        if request.turn == 1 and request.agent < self.always:
            completion.text = "I think it is coercive."
        elif request.turn == 2 and request.agent < self.first and self.sent[who] == 1:
            completion.text = '{"coercive": 1}'
        return completion

    async def aclose(self) -> None:
        pass


def test_bad_replies_are_asked_again_then_left_unlabelled_never_guessed(run_dir: Path) -> None:
    backend = Garbled(always=1, first=2)
    scores = score_run(run_dir, backend=backend)  # type: ignore[arg-type]
    assert scores.judging is not None
    labels = scores.labels
    assert labels is not None
    bad = labels[(labels["turn"] == 1) & (labels["agent"] == 0)]
    assert len(bad) > 0 and not bad["labelled"].any()
    assert bad[["coercive", "protective"]].isna().all().all()
    assert (bad["requests"] == 3).all()  # judge.max_attempts
    assert scores.judging.unlabelled == len(bad)
    assert scores.judging.labelled == len(labels) - len(bad)
    retried = labels[(labels["turn"] == 2) & (labels["agent"] < 2)]
    assert retried["labelled"].all() and (retried["requests"] == 2).all()
    n = len(labels)
    assert scores.judging.sent == n + 2 * len(bad) + len(retried)
    # the unlabelled units leave the rate's denominator; the counts are the judge's
    judged = scores.of("judge").simulations.set_index("sim_id")
    sums = labels.groupby("sim_id")[["coercive", "protective"]].sum()
    assert (judged.loc[sums.index, "coercive"] == sums["coercive"]).all()
    assert (judged["unlabelled"].groupby(level=0).sum() >= 0).all()
    assert judged["unlabelled"].sum() == len(bad)
    resumed = Garbled(always=1, first=2)
    again = score_run(run_dir, backend=resumed)  # type: ignore[arg-type]
    assert again.judging is not None and again.judging.sent == 0 and not resumed.sent
    assert again.judging.unlabelled == len(bad)


def test_the_judge_runs_inside_a_running_event_loop(run_dir: Path) -> None:
    """As in a notebook cell: scoring with a judge while an event loop runs in the thread."""
    backend = SyntheticBackend(load_world("paper"))

    async def cell() -> Any:
        return score_run(run_dir, backend=backend)

    scores = asyncio.run(cell())
    assert scores.judging is not None and scores.judging.sent == _utterances(run_dir)
    assert scores.judging.unjudged == 0 and scores.judging.stopped is None


def test_analyze_reads_stored_labels_and_refuses_an_unjudged_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert run_command(write_study(tmp_path, replicates=3), run_dir=run_dir).complete
    with pytest.raises(AnalysisError, match="utterances have no judge label yet"):
        score_run(run_dir)
    failed = cli("analyze", str(run_dir), "--no-report")
    assert failed.returncode == 1 and "no judge label yet" in failed.stderr
    assert "Traceback" not in failed.stderr
    score_run(run_dir, backend=SyntheticBackend(load_world("paper")))
    analysis = analyze_run(run_dir, instrument="judge")
    assert analysis.scores.instrument == "judge"
    lexicon = analysis.scores.of("lexicon").simulations
    judged = analysis.scores.simulations
    assert list(judged["sim_id"]) == list(lexicon["sim_id"])
    assert not judged["protective"].equals(lexicon["protective"])
    table = pd.read_csv(run_dir / "analysis" / "judge_agreement.csv")
    assert set(table["comparison"]) == {"lexicon_vs_judge", "judge_vs_oracle", "lexicon_vs_oracle"}
    oracle = table[table["comparison"] == "judge_vs_oracle"]
    assert (oracle["agreement"] == 1.0).all()  # the paper world's judge makes no errors
    write_report(run_dir, analysis)
    report = (run_dir / "report" / "report.md").read_text()
    assert "Verdicts are computed from the judge's counts." in report
    assert "lexicon vs judge" in report


def _judged_study(tmp_path: Path, replicates: int) -> tuple[Path, Path]:
    """The paper world with a judge that flips 10% of its labels, and a study of 6 agents,
    8 turns and two individuation ratios judged in it."""
    world = tmp_path / "judge10.yaml"
    data = yaml.safe_load(assets.path("configs", "synthetic", "paper.yaml").read_text())
    world.write_text(yaml.safe_dump({**data, "name": "judge10", "judge_error_rate": 0.1}))
    config = write_study(tmp_path, replicates=replicates, agents={"count": 6, "target": 6})
    study = yaml.safe_load(config.read_text())
    study["conversation"]["turns"] = 8
    study["factors"]["individuation_ratios"] = [0.0, 1.0]
    config.write_text(yaml.safe_dump(study, sort_keys=False))
    return world, config


def test_a_10_percent_judge_recovers_the_planted_kappa(tmp_path: Path) -> None:
    world, config = _judged_study(tmp_path, replicates=4)
    run_dir = tmp_path / "big"
    assert run_command(config, world=str(world), run_dir=run_dir).complete
    scores = score_run(run_dir, backend=SyntheticBackend(load_world(world)))
    assert scores.labels is not None
    store = Store(run_dir, readonly=True)
    try:
        labels = with_oracle(scores.labels, store, study_of(store))
    finally:
        store.close()
    pooled = agreement_table(labels.assign(language="all"))
    pooled = pooled[pooled["comparison"] == "judge_vs_oracle"]
    assert pooled["n"].min() > 1500
    for row in pooled.itertuples():
        planted = expected_kappa(row.rate_b, 0.1)
        assert abs(row.kappa - planted) < 0.05, (row.category, row.kappa, planted)


def test_judge_calls_count_against_the_budget_and_resume(tmp_path: Path) -> None:
    config = write_study(tmp_path)
    run_dir = tmp_path / "run"
    assert run_command(config, world="paper", run_dir=run_dir).complete
    with sqlite3.connect(run_dir / "run.sqlite") as conn:
        text = conn.execute("SELECT value FROM run WHERE key = 'config'").fetchone()[0]
    budgeted = yaml.safe_load(text)
    with pytest.raises(AnalysisError, match=r"not judged yet \(budget: 10 calls spent\)"):
        backend = SyntheticBackend(load_world("paper"))
        store = Store(run_dir)
        try:
            store.set_fact("config", yaml.safe_dump({**budgeted, "budget": {"calls": 10}}))
        finally:
            store.close()
        score_run(run_dir, backend=backend)
    spent = _judge_calls(run_dir)
    assert 10 <= spent < _utterances(run_dir)
    store = Store(run_dir)
    try:
        store.set_fact("config", text)
    finally:
        store.close()
    done = score_run(run_dir, backend=SyntheticBackend(load_world("paper")))
    assert done.judging is not None and done.judging.stored == spent
    assert done.judging.sent == _utterances(run_dir) - spent
    assert _judge_calls(run_dir) == _utterances(run_dir)


def test_an_utterance_over_the_judges_context_is_unlabelled_and_analyze_proceeds(
    run_dir: Path, serve: Callable[..., Server]
) -> None:
    with Store(run_dir, readonly=True) as store:
        study = study_of(store)
        items = utterances(store, study)
    judge = study.scoring.judge
    assert judge is not None
    asked = {}
    for u in items:
        request = judge_request(load_rubric(u[4]), judge, u, 0)[0]
        asked[u[:4]] = prompt_tokens(request.messages) + request.max_tokens
    limit = sorted(asked.values())[len(asked) * 4 // 5]  # about a fifth do not fit
    too_long = {key for key, tokens in asked.items() if tokens > limit}
    n, k = len(items), len(too_long)
    assert 0 < k < n // 2
    server = serve("--context-tokens", str(limit))
    done = _score(run_dir, server)
    assert done.returncode == 0, done.stderr
    assert (f"judge: {n} utterances, {n - k} labelled, {k} unlabelled ({k} over the judge's "
            f"context length); {n - k} calls sent") in done.stdout  # fmt: skip
    ledger = server.ledger()
    assert sum(e["status"] == 400 for e in ledger) == k  # each asked once, never re-seeded
    assert sum(e["delivered"] for e in ledger) == n - k
    labels = _labels(run_dir)
    unlabelled = labels[~labels["labelled"]]
    keys = ["sim_id", "turn", "agent", "channel"]
    assert set(unlabelled[keys].itertuples(index=False, name=None)) == too_long
    assert (unlabelled["reason"] == "context_length").all() and (unlabelled["requests"] == 1).all()
    assert unlabelled[["coercive", "protective"]].isna().all().all()
    assert labels.loc[labels["labelled"], "reason"].isna().all()
    analyzed = cli("analyze", str(run_dir), "--no-report")
    assert analyzed.returncode == 0, analyzed.stderr
    table = pd.read_csv(run_dir / "analysis" / "judge_agreement.csv")
    one = table[(table["comparison"] == "lexicon_vs_judge") & (table["category"] == "coercive")]
    assert one["context_length"].sum() == k and one["unlabelled"].sum() == k
    again = _score(run_dir, server)  # a resume sends nothing: the record stands
    assert again.returncode == 0 and "; 0 calls sent" in again.stdout
    assert len(server.ledger()) == len(ledger)


def test_code_agree_recovers_the_planted_judge_kappa_against_an_exact_coder(
    tmp_path: Path,
) -> None:
    """The oracle codes the sample without error; the judge flips each label at 10%. The
    judge-vs-coder kappa must be the kappa that flip rate implies at the coded base rate."""
    world, config = _judged_study(tmp_path, replicates=12)
    run_dir = tmp_path / "run"
    assert run_command(config, world=str(world), run_dir=run_dir).complete
    sample = cli("code", "sample", str(run_dir), "--per-language", "100000")
    assert sample.returncode == 0, sample.stderr
    unjudged = cli("code", "simulate", str(run_dir), "--coders", "1", "--error-rate", "0")
    coder = str(run_dir / "code" / "simulated_coder_1.csv")
    refused = cli("code", "agree", str(run_dir), coder)
    assert unjudged.returncode == 0 and refused.returncode == 1
    assert "have no label yet; run `alignbf score" in refused.stderr
    early = cli("lexicon", "validate", str(run_dir))
    assert early.returncode == 1 and "have no judge label yet" in early.stderr
    assert score_command(run_dir).judging is not None  # the run's world: the 10% judge
    done = cli("code", "agree", str(run_dir), coder)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(run_dir / "analysis" / "validity.csv")
    assert set(table["instrument"]) == {"lexicon", "judge"}
    judge = table[table["instrument"] == "judge"]
    assert len(judge) == 8 and judge["n"].min() > 2000 and (judge["unlabelled"] == 0).all()
    for row in judge.itertuples():
        planted = expected_kappa(row.positives / row.n, 0.1)
        assert abs(row.kappa - planted) < 0.05, (row.language, row.category, row.kappa, planted)
        assert row.kappa_low < row.kappa < row.kappa_high
    lexicon = table[table["instrument"] == "lexicon"]
    # both instruments on the sampled utterances of the hit channels
    assert (lexicon["n"].to_numpy() == judge["n"].to_numpy()).all()
    # the validity gate reads the rows of the instrument the verdicts come from
    from alignbf.analysis.gate import unmet
    from alignbf.config.hypotheses import ValidityGate

    # A bar the judge (10% flipped labels) clears everywhere passes the judge; at a bar
    # between the lexicon's weakest and strongest gated rows, the gate names exactly the
    # lexicon's rows below it.
    judge_bar = ValidityGate(kappa=float(judge["kappa"].min()))
    assert unmet(judge_bar, table, ["en", "ja"], "judge") == {}
    gated = lexicon[lexicon["category"].isin(ValidityGate().categories)]
    bar = float(gated["kappa"].median())
    gate = ValidityGate(kappa=bar)
    weak = gated[gated["kappa"] < bar]
    assert 0 < len(weak) < len(gated), lexicon[["language", "category", "kappa"]]
    failing = unmet(gate, table, ["en", "ja"], "lexicon")
    assert set(failing) == set(weak["language"])
    assert all(f"{r.category} kappa" in failing[r.language] for r in weak.itertuples())
    older = lexicon.drop(columns="instrument")  # a file from before the judge was measured
    assert unmet(gate, older, ["en", "ja"], "lexicon") == failing
    assert "no agreement of the judge" in unmet(gate, older, ["en"], "judge")["en"]
    # lexicon validate measures the judge against the oracle on the same utterances
    validated = cli("lexicon", "validate", str(run_dir))
    assert validated.returncode == 0 and "Judge vs oracle" in validated.stdout
    oracle = pd.read_csv(run_dir / "analysis" / "judge_oracle_agreement.csv")
    assert set(oracle["agents"]) == {"all", "aligned", "unaligned"}
    mine = oracle[oracle["agents"] == "all"].set_index(["language", "category"])
    coded = judge.set_index(["language", "category"])
    pd.testing.assert_series_equal(mine["kappa"], coded["kappa"], check_exact=False, rtol=1e-12)
    assert (mine["utterances"] == coded["n"]).all()
    assert (run_dir / "analysis" / "judge_oracle_differential.csv").exists()
