"""The ``alignbf`` command line: each command parses, calls one core function, renders."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from alignbf.cli.code import code_app
from alignbf.cli.common import AsJson, Config
from alignbf.cli.common import echo_json as _echo_json
from alignbf.cli.lexicon import lexicon_app
from alignbf.cli.serve import serve_synthetic
from alignbf.errors import AlignbfError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Run, score and analyse preregistered multi-agent LLM studies.",
)


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
        too_long = judged.context_length
        typer.echo(
            f"judge: {judged.utterances} utterances, {judged.labelled} labelled, "
            f"{judged.unlabelled} unlabelled"
            + (f" ({too_long} over the judge's context length)" if too_long else "")
            + f"; {judged.sent} calls sent, "
            f"{judged.stored} already judged, {judged.progress.retries} retries"
        )
    for path in result.paths:
        typer.echo(str(path))


app.add_typer(code_app, name="code")
app.add_typer(lexicon_app, name="lexicon")


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
    sims: Annotated[int, typer.Option(min=10, help="Independent simulated studies.")] = 100,
    max_replicates: Annotated[
        int | None,
        typer.Option(min=2, help="Largest replicates per cell (default: twice the plan's)."),
    ] = None,
    budget: Annotated[
        float | None, typer.Option(help="Show the best power this many USD buys.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Salt of the simulated studies' seeds.")] = 0,
    as_json: AsJson = False,
) -> None:
    """Power of each preregistered hypothesis by simulation, and the replicates needed."""
    from alignbf.analysis.power import estimate_power
    from alignbf.cli.render import render_power, stage_progress

    with stage_progress(as_json) as on_progress:
        result = estimate_power(
            config,
            world=world,
            sims=sims,
            max_replicates=max_replicates,
            seed=seed,
            on_progress=on_progress,
        )
    if as_json:
        _echo_json(
            {
                "study": result.study,
                "world": result.world,
                "max_replicates": result.max_replicates,
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


app.command("serve-synthetic")(serve_synthetic)


def main() -> None:
    """Console entry point: user errors are one line on stderr and exit code 1."""
    try:
        app()
    except AlignbfError as exc:
        print(f"alignbf: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
