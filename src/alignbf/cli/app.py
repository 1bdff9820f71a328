"""The ``alignbf`` command line: each command parses, calls one core function, renders."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from alignbf.cli.code import code_app
from alignbf.errors import AlignbfError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Run, score and analyse preregistered multi-agent LLM studies.",
)

Config = Annotated[
    str, typer.Argument(help="Study config: a path, or a built-in name like study2.")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


@app.command()
def validate(config: Config) -> None:
    """Check a study config; print a summary or one line naming what is wrong."""
    from alignbf.api import validate_study

    typer.echo(validate_study(config))


@app.command()
def plan(
    config: Config,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when the cost may exceed budget.usd.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Show the grid, calls, tokens and cost of a study before spending anything."""
    from alignbf.api import plan_study
    from alignbf.cli.render import render_plan

    result = plan_study(config)
    if as_json:
        _echo_json(result.to_dict())
    else:
        render_plan(result)
    if strict and result.warnings():
        raise typer.Exit(1)


@app.command()
def run(
    config: Config,
    backend: Annotated[
        str, typer.Option(help="synthetic (built-in, no network) or endpoints (HTTP APIs).")
    ] = "synthetic",
    world: Annotated[
        str | None, typer.Option(help="Synthetic world file or name (paper, null).")
    ] = None,
    run_dir: Annotated[
        Path | None, typer.Option(help="Run directory (default runs/<study>).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Run at most N simulations.")] = None,
    shard: Annotated[str | None, typer.Option(help="Run slice K of N, e.g. 2/4.")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Simulations in flight.")] = 64,
    base_url: Annotated[
        str | None, typer.Option(help="Send every model to this OpenAI-compatible server.")
    ] = None,
    deviation: Annotated[
        str | None, typer.Option(help="Run a locked study that differs from its lock; the reason.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    retry_failed: Annotated[
        bool, typer.Option(help="Run simulations marked failed (after repeated errors) again.")
    ] = False,
    batch: Annotated[
        bool,
        typer.Option("--batch", help="Send calls to endpoints with batch: true as batch jobs."),
    ] = False,
) -> None:
    """Run (or resume) a study; re-running the same command resumes where it stopped."""
    from alignbf.api import run_command
    from alignbf.cli.render import progress_display, render_run

    with progress_display(quiet) as on_progress:
        result = run_command(
            config,
            backend=backend,
            world=world,
            run_dir=run_dir,
            limit=limit,
            shard=shard,
            concurrency=concurrency,
            base_url=base_url,
            deviation=deviation,
            on_progress=on_progress,
            retry_failed=retry_failed,
            batch=batch,
        )
    render_run(result)
    if result.stopped == "interrupted":
        raise typer.Exit(130)
    if not result.complete:
        raise typer.Exit(75)


@app.command()
def status(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    as_json: AsJson = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Live counters, refreshed until the run is complete.")
    ] = False,
) -> None:
    """Per-cell progress, statuses, attrition, calls, tokens and cost of a run."""
    from alignbf.cli.render import render_status, watch_progress
    from alignbf.store.export import run_status

    if watch:
        from alignbf.api import live_progress

        if as_json:
            raise typer.BadParameter(
                "--watch shows a live display; drop --json", param_hint="--watch"
            )
        live_progress(run_dir)  # a directory that is not a run fails here, in one line
        watch_progress(lambda: live_progress(run_dir))
        return
    result = run_status(run_dir)
    if as_json:
        _echo_json(result)
    else:
        render_status(result)


@app.command()
def view(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (it may still be running).")],
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: a free one).")] = 0,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Do not open a browser.")
    ] = False,
    export_dir: Annotated[
        Path | None, typer.Option("--export", help="Write the pages as static HTML here instead.")
    ] = None,
) -> None:
    """Browse a run read-only on 127.0.0.1: cells, simulations, conversations with hits."""
    from alignbf.report.viewer import export_run_pages, serve_run

    if export_dir is not None:
        paths = export_run_pages(run_dir, export_dir)
        typer.echo(f"wrote {len(paths)} pages; open {export_dir / 'index.html'}")
        return

    def ready(url: str) -> None:
        typer.echo(f"viewing {run_dir} at {url} (Ctrl-C stops)")
        sys.stdout.flush()
        if not no_browser:
            import webbrowser

            webbrowser.open(url)

    from contextlib import suppress

    with suppress(KeyboardInterrupt):
        serve_run(run_dir, port, ready)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    out: Annotated[
        Path | None, typer.Option(help="Output directory (default RUN_DIR/export).")
    ] = None,
) -> None:
    """Write JSONL transcripts and CSV/Parquet tables of messages and calls."""
    from alignbf.store.export import export_run

    for path in export_run(run_dir, out):
        typer.echo(str(path))


@app.command()
def merge(
    run_dirs: Annotated[list[Path], typer.Argument(help="Shard run directories of one study.")],
    into: Annotated[Path, typer.Option(help="The merged run directory.")],
) -> None:
    """Combine shard runs (from --shard K/N) of one study into one run directory."""
    from alignbf.store.merge import merge_runs

    total = merge_runs(run_dirs, into)
    typer.echo(f"{into}: {total} simulations from {len(run_dirs)} run(s)")


@app.command()
def analyze(
    run_dir: Annotated[
        Path | None, typer.Argument(help="A run directory (default: the latest under runs/).")
    ] = None,
    inputs: Annotated[
        list[str] | None,
        typer.Option("--input", help="NAME=DIR: a run some hypotheses use, e.g. study1=runs/s1."),
    ] = None,
    as_json: AsJson = False,
    no_report: Annotated[bool, typer.Option("--no-report", help="Skip RUN_DIR/report/.")] = False,
    instrument: Annotated[
        str | None,
        typer.Option(help="lexicon or judge: whose scores to test (default: the study's)."),
    ] = None,
) -> None:
    """Evaluate a run's preregistered hypotheses: attrition first, then verdicts."""
    from rich.console import Console

    from alignbf.analysis.analyze import analyze_run, parse_inputs
    from alignbf.report.report import write_report
    from alignbf.report.tables import analysis_json, analysis_renderables

    try:
        given = parse_inputs(inputs or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--input") from None
    if instrument not in (None, "lexicon", "judge"):
        raise typer.BadParameter("accepted: lexicon, judge", param_hint="--instrument")
    result = analyze_run(run_dir, given, instrument)
    if not no_report:
        result.paths += write_report(result.run_dir, result)
    if as_json:
        _echo_json(analysis_json(result))
        return
    console = Console()
    for renderable in analysis_renderables(result):
        console.print(renderable)
    console.print("wrote " + ", ".join(str(p) for p in result.paths))


@app.command()
def init(directory: Annotated[Path, typer.Argument(help="A new directory.")]) -> None:
    """Copy the built-in configs, data and preregistrations into DIRECTORY to edit."""
    from alignbf.config.assets import init_project

    for path in init_project(directory):
        typer.echo(f"wrote {path}/")


@app.command()
def score(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    base_url: Annotated[
        str | None, typer.Option(help="Send the judge's calls to this OpenAI-compatible server.")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Judge calls in flight.")] = 16,
) -> None:
    """Score stored transcripts: per-simulation and per-agent tables. The lexicon calls no
    model; with ``scoring.instrument`` judge or both, utterances not yet judged are sent
    to the judge (paid calls, resumable)."""
    from alignbf.api import score_command

    result = score_command(run_dir, base_url=base_url, concurrency=concurrency)
    sims, agents = result.simulations, result.agents
    scope = sims["z_scope"].iloc[0]
    typer.echo(f"scored {len(sims)} simulations and {len(agents)} agents (z-scope {scope})")
    if (judged := result.judging) is not None:
        typer.echo(
            f"judge: {judged.utterances} utterances, {judged.labelled} labelled, "
            f"{judged.unlabelled} unlabelled; {judged.sent} calls sent, "
            f"{judged.stored} already judged, {judged.progress.retries} retries"
        )
    for path in result.paths:
        typer.echo(str(path))


app.add_typer(code_app, name="code")
lexicon_app = typer.Typer(help="Inspect and check the scoring lexicons.", no_args_is_help=True)
app.add_typer(lexicon_app, name="lexicon")


@lexicon_app.command("explain")
def lexicon_explain(
    text: Annotated[str, typer.Argument(help="The text to score.")],
    lang: Annotated[str, typer.Option("--lang", help="Language code, e.g. ja.")] = "en",
    echo: Annotated[
        int | None,
        typer.Option(help="Echo n-gram length (0 = off; default: the scoring default)."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Show the units counted and every lexicon match (category, term, span) in TEXT."""
    from alignbf.scoring.lexicon import explain_text

    result = explain_text(text, lang, echo)
    if as_json:
        _echo_json(result)
        return
    typer.echo(
        f"{result['language']} lexicon {result['version']}: {result['units']} {result['unit']}s"
    )
    for m in result["matches"]:
        marks = [mark for mark, on in (("negated", m["negated"]), ("echo", m["echo"])) if on]
        typer.echo(
            f"  {m['category']:<14} {m['text']!r} at {m['start']}-{m['end']} (term {m['term']!r})"
            + (f" [{', '.join(marks)}]" if marks else "")
        )
    typer.echo("counts: " + ", ".join(f"{k} {v}" for k, v in result["counts"].items()))


@lexicon_app.command("validate")
def lexicon_validate(
    run_dir: Annotated[Path, typer.Argument(help="A synthetic run directory.")],
    as_json: AsJson = False,
) -> None:
    """Agreement of the lexicon with the synthetic oracle: per language and category."""
    from alignbf.analysis.validity import validate_lexicon
    from alignbf.cli.render import render_validity

    result = validate_lexicon(run_dir)
    if as_json:
        _echo_json(
            {
                "agreement": json.loads(result.agreement.to_json(orient="records")),
                "differential": json.loads(result.differential.to_json(orient="records")),
                "attenuation": json.loads(result.attenuation.to_json(orient="records")),
                "echo": result.echo,
            }
        )
        return
    render_validity(result)


@lexicon_app.command("check")
def lexicon_check() -> None:
    """Validate every lexicon file; exit 1 listing the problems."""
    from alignbf.scoring.lexicon import check_lexicons

    problems = check_lexicons()
    for line in problems:
        typer.echo(line)
    if problems:
        raise typer.Exit(1)
    typer.echo("all lexicons ok")


@app.command()
def replicate(
    run_dir: Annotated[Path, typer.Argument(help="The run to check.")],
    against: Annotated[
        str | None,
        typer.Option(help="Results file, another run, or planted:<world> (default: the paper)."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Compare each preregistered hypothesis with a reference (exit 0 / 1 not / 2 inconclusive)."""
    from alignbf.analysis.replicate import replicate_run
    from alignbf.cli.render import render_replication

    result = replicate_run(run_dir, against)
    if as_json:
        _echo_json(
            {
                "reference": result.reference,
                "exit_code": result.exit_code,
                "drift": result.drift,
                "hypotheses": result.table.to_dict("records"),
            }
        )
    else:
        render_replication(result)
    raise typer.Exit(result.exit_code)


@app.command()
def power(
    config: Config,
    world: Annotated[
        str | None, typer.Option(help="Synthetic world (paper, null, or a file).")
    ] = None,
    sims: Annotated[int, typer.Option(min=10, help="Simulated studies per candidate size.")] = 100,
    pool: Annotated[
        int | None, typer.Option(min=4, help="Replicates per cell simulated once.")
    ] = None,
    budget: Annotated[
        float | None, typer.Option(help="Show the best power this many USD buys.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the subsample draws.")] = 0,
    as_json: AsJson = False,
) -> None:
    """Power of each preregistered hypothesis by simulation, and the replicates needed."""
    from alignbf.analysis.power import estimate_power
    from alignbf.cli.render import render_power, stage_progress

    with stage_progress(as_json) as on_progress:
        result = estimate_power(
            config, world=world, sims=sims, pool=pool, seed=seed, on_progress=on_progress
        )
    if as_json:
        _echo_json(
            {
                "study": result.study,
                "world": result.world,
                "pool": result.pool,
                "sims": result.sims,
                "power": result.table.to_dict("records"),
                "needed": result.needed.to_dict("records"),
                "skipped": result.skipped,
            }
        )
    else:
        render_power(result, budget)


prereg_app = typer.Typer(help="Lock a study's preregistration and verify it.", no_args_is_help=True)
app.add_typer(prereg_app, name="prereg")


@prereg_app.command("lock")
def prereg_lock(config: Config) -> None:
    """Hash everything that defines the study into a lock file beside its preregistration."""
    from alignbf.analysis.prereg import read_lock, write_lock

    path = write_lock(config)
    lock = read_lock(path)
    typer.echo(f"locked {lock.study}: {len(lock.items)} items, root {lock.root[:16]} -> {path}")


@prereg_app.command("verify")
def prereg_verify(config: Config) -> None:
    """List every difference between the study and its lock (exit 1 if any)."""
    from alignbf.analysis.prereg import verify

    result = verify(config)
    if result.locked is None:
        if result.lock_file is None:
            typer.echo(
                f"{config}: not locked: the study names no preregistration file (prereg:) "
                "to lock; add one, then run `alignbf prereg lock`"
            )
        else:
            typer.echo(f"not locked (no {result.lock_file}); run `alignbf prereg lock`")
        raise typer.Exit(1)
    for line in result.differences:
        typer.echo(line)
    if result.differences:
        raise typer.Exit(1)
    typer.echo(f"{result.lock_file}: matches (root {result.locked.root[:16]})")


@app.command("serve-synthetic")
def serve_synthetic(
    port: Annotated[int, typer.Option(min=0, help="Port (0 picks a free one).")] = 0,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    latency_ms: Annotated[float, typer.Option(min=0, help="Delay before each answer.")] = 0.0,
    fault_rate: Annotated[float, typer.Option(help="Share of attempts given a fault.")] = 0.0,
    fault_seed: Annotated[int, typer.Option(help="Seed of the fault schedule.")] = 0,
    fault_kinds: Annotated[
        str | None, typer.Option(help="Comma list: transient kinds to draw, permanent to force.")
    ] = None,
    world: Annotated[str, typer.Option(help="Synthetic world file or name.")] = "paper",
    ledger: Annotated[
        Path | None, typer.Option(help="Also append the ledger here (JSONL).")
    ] = None,
    stall_s: Annotated[float, typer.Option(min=0, help="How long a stall fault lasts.")] = 30.0,
    storm_s: Annotated[
        float, typer.Option(min=0, help="Answer every chat request 429 for this long.")
    ] = 0.0,
    storm_at_s: Annotated[
        float, typer.Option(min=0, help="When the storm starts, after the first chat request.")
    ] = 0.0,
    storm_retry_after_s: Annotated[
        int, typer.Option(min=0, help="Retry-After of the storm's 429s.")
    ] = 2,
    prefix_cache_tokens: Annotated[
        int, typer.Option(min=0, help="Emulated prompt cache size in tokens (0 = off).")
    ] = 0,
    reject_prompt_cache_key: Annotated[
        bool, typer.Option(help="Answer 400 to requests that carry prompt_cache_key.")
    ] = False,
    judge_error_rate: Annotated[
        float | None,
        typer.Option(help="Share of category labels the judge flips (default: the world's)."),
    ] = None,
    content_filter_rate: Annotated[
        float, typer.Option(help="Share of requests answered finish_reason content_filter.")
    ] = 0.0,
    reject_response_format: Annotated[
        str | None, typer.Option(help="Comma list of response_format types to answer 400.")
    ] = None,
    batch_api: Annotated[bool, typer.Option(help="Serve the batch API (/v1/batches).")] = True,
    batch_expire: Annotated[
        str | None, typer.Option(help="Comma list of batch job numbers that expire.")
    ] = None,
    batch_partial: Annotated[
        str | None, typer.Option(help="Comma list of batch job numbers missing output lines.")
    ] = None,
    batch_line_fail_rate: Annotated[
        float, typer.Option(help="Share of batch lines answered with a 500 line.")
    ] = 0.0,
    batch_slow_polls: Annotated[
        int, typer.Option(min=0, help="Polls a batch job stays in_progress.")
    ] = 0,
    batch_stray_lines: Annotated[
        bool, typer.Option(help="Add an output line with an unknown custom_id to every job.")
    ] = False,
) -> None:
    """Serve the synthetic model as an OpenAI-compatible API, with faults (tests, benchmarks)."""
    from contextlib import suppress

    from alignbf.testing.batchapi import batch_faults
    from alignbf.testing.faults import parse_fault_kinds
    from alignbf.testing.server import ServerOptions, parse_response_formats, serve

    def ready(url: str) -> None:
        typer.echo(f"listening on {url}")
        sys.stdout.flush()

    options = ServerOptions(
        host=host,
        port=port,
        latency_ms=latency_ms,
        fault_rate=fault_rate,
        fault_seed=fault_seed,
        fault_kinds=parse_fault_kinds(fault_kinds),
        world=world,
        ledger=ledger,
        stall_s=stall_s,
        storm_s=storm_s,
        storm_at_s=storm_at_s,
        storm_retry_after_s=storm_retry_after_s,
        prefix_cache_tokens=prefix_cache_tokens,
        reject_prompt_cache_key=reject_prompt_cache_key,
        judge_error_rate=judge_error_rate,
        content_filter_rate=content_filter_rate,
        reject_response_format=parse_response_formats(reject_response_format),
        batch_api=batch_api,
        batch_faults=batch_faults(
            batch_expire,
            batch_partial,
            batch_line_fail_rate,
            batch_slow_polls,
            batch_stray_lines,
            fault_seed,
        ),
    )
    with suppress(KeyboardInterrupt):
        serve(options, ready)


def main() -> None:
    """Console entry point: user errors are one line on stderr and exit code 1."""
    try:
        app()
    except AlignbfError as exc:
        print(f"alignbf: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
