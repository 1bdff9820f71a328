"""``alignbf lexicon``: explain, validate and check the scoring lexicons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from alignbf.cli.common import AsJson, echo_json

lexicon_app = typer.Typer(help="Inspect and check the scoring lexicons.", no_args_is_help=True)


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
        echo_json(result)
        return
    typer.echo(
        f"{result['language']} lexicon {result['version']}: {result['units']} {result['unit']}s"
    )
    for m in result["matches"]:
        negated = f"negated by {m['negated_by']!r}" if m["negated_by"] else "negated"
        marks = [mark for mark, on in ((negated, m["negated"]), ("echo", m["echo"])) if on]
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
    """Agreement of the lexicon (and of the judge, with judge labels) with the synthetic
    oracle: per language and category."""
    from alignbf.analysis.validity import validate_lexicon
    from alignbf.cli.render import render_validity

    result = validate_lexicon(run_dir)
    if as_json:
        frames = {
            "agreement": result.agreement,
            "differential": result.differential,
            "attenuation": result.attenuation,
            "judge": result.judge,  # null without judge labels
            "judge_differential": result.judge_differential,
        }
        records = {
            k: None if f is None else json.loads(f.to_json(orient="records"))
            for k, f in frames.items()
        }
        echo_json({**records, "echo": result.echo})
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
