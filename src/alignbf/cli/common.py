"""Argument types and output helpers shared by the command modules."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

Config = Annotated[
    str, typer.Argument(help="Study config: a path, or a built-in name like study2.")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def echo_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON (``--json`` output)."""
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))
