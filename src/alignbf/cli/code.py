"""``alignbf code``: human coding of a run's utterances (sample, agreement)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

code_app = typer.Typer(
    help="Validate the instruments against human coders: sample utterances, read the codes back.",
    no_args_is_help=True,
)
RunDir = Annotated[Path, typer.Argument(help="A run directory.")]


@code_app.command("sample")
def code_sample(
    run_dir: RunDir,
    per_language: Annotated[int, typer.Option(min=1, help="Utterances per language.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the draw (recorded).")] = 0,
) -> None:
    """Write a stratified sample of utterances for human coders (condition and lexicon hidden)."""
    from alignbf.scoring.coding import sample_run

    drawn = sample_run(run_dir, per_language, seed)
    languages = drawn.sample["language"].nunique()
    typer.echo(f"{len(drawn.sample)} utterances in {languages} language(s), seed {seed}")
    for path in drawn.paths:
        typer.echo(f"wrote {path}")
    typer.echo("give coders sample.csv and data/codebook/<lang>.md; keep key.csv from them")


@code_app.command("agree")
def code_agree(
    run_dir: RunDir,
    files: Annotated[list[Path], typer.Argument(help="One coded copy of sample.csv per coder.")],
    adjudicated: Annotated[
        Path | None, typer.Option(help="Adjudicated codes (default: the coders' majority).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
) -> None:
    """Lexicon (and judge, when the run has one) vs human codes: precision, recall, F1,
    kappa; coder reliability (kappa, alpha)."""
    from alignbf.analysis.agreement import agree_run
    from alignbf.cli.render import render_agreement

    render_agreement(agree_run(run_dir, files, adjudicated, seed=seed))


@code_app.command("simulate")
def code_simulate(
    run_dir: RunDir,
    coders: Annotated[int, typer.Option(min=1, help="Simulated coders.")] = 2,
    error_rate: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="Chance of a wrong code.")
    ] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed of the errors.")] = 0,
) -> None:
    """Code a synthetic run's sample from the oracle with planted errors (tests the statistics)."""
    from alignbf.analysis.validity import simulate_coders

    for path in simulate_coders(run_dir, coders, error_rate, seed):
        typer.echo(f"wrote {path}")
