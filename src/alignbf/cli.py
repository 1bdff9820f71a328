"""The ``alignbf`` command line: each command parses, calls one core function, renders."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from alignbf.errors import AlignbfError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Run, score and analyse preregistered multi-agent LLM studies.",
)

Config = Annotated[str, typer.Argument(help="Study config: a path, or a built-in name like study2.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _echo_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


@app.command()
def validate(config: Config) -> None:
    """Check a study config; print a summary or one line naming what is wrong."""
    from alignbf.commands import validate_study

    typer.echo(validate_study(config))


@app.command()
def plan(config: Config, as_json: AsJson = False) -> None:
    """Show the grid, calls, tokens and cost of a study before spending anything."""
    from alignbf.commands import plan_study
    from alignbf.render import render_plan

    result = plan_study(config)
    if as_json:
        _echo_json(result.to_dict())
    else:
        render_plan(result)


@app.command()
def run(
    config: Config,
    backend: Annotated[
        str, typer.Option(help="synthetic (built-in, no network) or endpoints (HTTP APIs).")
    ] = "synthetic",
    world: Annotated[
        str | None, typer.Option(help="Synthetic world file or name (paper, null).")
    ] = None,
    run_dir: Annotated[Path | None, typer.Option(help="Run directory (default runs/<study>).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Run at most N simulations.")] = None,
    shard: Annotated[str | None, typer.Option(help="Run slice K of N, e.g. 2/4.")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Simulations in flight.")] = 64,
    base_url: Annotated[
        str | None, typer.Option(help="Send every model to this OpenAI-compatible server.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Run (or resume) a study; re-running the same command resumes where it stopped."""
    from alignbf.commands import run_command
    from alignbf.render import progress_display, render_run

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
            on_progress=on_progress,
        )
    render_run(result)
    if result.stopped == "interrupted":
        raise typer.Exit(130)
    if not result.complete:
        raise typer.Exit(75)


@app.command()
def status(run_dir: Annotated[Path, typer.Argument(help="A run directory.")], as_json: AsJson = False) -> None:
    """Per-cell progress, statuses, attrition, calls, tokens and cost of a run."""
    from alignbf.export import run_status
    from alignbf.render import render_status

    result = run_status(run_dir)
    if as_json:
        _echo_json(result)
    else:
        render_status(result)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    out: Annotated[Path | None, typer.Option(help="Output directory (default RUN_DIR/export).")] = None,
) -> None:
    """Write JSONL transcripts and CSV/Parquet tables of messages and calls."""
    from alignbf.export import export_run

    for path in export_run(run_dir, out):
        typer.echo(str(path))


@app.command()
def init(directory: Annotated[Path, typer.Argument(help="A new directory.")]) -> None:
    """Copy the built-in configs, data and preregistrations into DIRECTORY to edit."""
    from alignbf.assets import init_project

    for path in init_project(directory):
        typer.echo(f"wrote {path}/")


def main() -> None:
    """Console entry point: user errors are one line on stderr and exit code 1."""
    try:
        app()
    except AlignbfError as exc:
        print(f"alignbf: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
