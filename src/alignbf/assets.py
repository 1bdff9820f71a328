"""Where the built-in configs, data and preregistrations live.

In a checkout they are the top-level ``configs/``, ``data/`` and ``prereg/``
folders; in an installed wheel they ship as ``alignbf/_assets/``. A study named
on the command line is looked up in the current directory first, then among the
built-in configs (``study2`` and ``study2.yaml`` both work).
"""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path

from alignbf.errors import ConfigError

ASSET_DIRS = ("configs", "data", "prereg")


@cache
def root() -> Path:
    """The directory holding ``configs/``, ``data/`` and ``prereg/``."""
    here = Path(__file__).resolve().parent
    checkout = here.parents[1]
    if (checkout / "configs").is_dir() and (checkout / "data").is_dir():
        return checkout
    return here / "_assets"


def path(*parts: str) -> Path:
    """A path inside the built-in assets, e.g. ``path("data", "languages.yaml")``."""
    return root().joinpath(*parts)


def find_config(name: str | Path) -> Path:
    """Resolve a study given as a path, a file name or a bare name like ``study2``."""
    candidate = Path(name)
    if candidate.exists():
        return candidate
    stem = candidate.name if candidate.suffix in (".yaml", ".yml") else f"{candidate.name}.yaml"
    builtin = path("configs", stem)
    if builtin.exists():
        return builtin
    raise ConfigError(
        f"{name}: file not found (nor a built-in study; try one of: {', '.join(builtin_studies())})"
    )


def builtin_studies() -> list[str]:
    """Names of the study configs that ship with alignbf."""
    return sorted(p.stem for p in path("configs").glob("*.yaml") if p.stem != "endpoints")


def init_project(directory: Path) -> list[Path]:
    """Copy the built-in configs, data and preregistrations into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ASSET_DIRS:
        target = directory / name
        if target.exists():
            raise ConfigError(f"{target}: already exists; choose an empty directory")
        shutil.copytree(path(name), target)
        written.append(target)
    return written
