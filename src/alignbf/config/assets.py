"""Where the configs, data and preregistrations live.

The *project root* holds ``configs/``, ``data/`` and ``prereg/``. It is, in order:
the directory named by ``ALIGNBF_HOME``; the current directory when it holds
``configs/`` and ``data/`` (a project made by ``alignbf init``, whose edited prompts
and lexicons then take effect); the checkout; the installed wheel's
``alignbf/_assets/``. A study named on the command line is looked up as a path
first, then among the root's configs (``study2`` and ``study2.yaml`` both work).
"""

from __future__ import annotations

import difflib
import os
import shutil
from functools import cache
from pathlib import Path

from alignbf.errors import ConfigError

ASSET_DIRS = ("configs", "data", "prereg")


def _is_project(directory: Path) -> bool:
    return (directory / "configs").is_dir() and (directory / "data").is_dir()


def root() -> Path:
    """The project root holding ``configs/``, ``data/`` and ``prereg/`` (see module doc)."""
    return _root_for(os.environ.get("ALIGNBF_HOME", ""), os.getcwd())


@cache
def _root_for(home: str, cwd: str) -> Path:
    if home:
        return Path(home).resolve()
    if _is_project(Path(cwd)):
        return Path(cwd).resolve()
    return builtin_root()


@cache
def builtin_root() -> Path:
    """The assets that ship with alignbf: the checkout's, else the wheel's."""
    package = Path(__file__).resolve().parents[1]
    checkout = package.parents[1]
    if _is_project(checkout):
        return checkout
    return package / "_assets"


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
    studies = builtin_studies()
    if not studies:
        raise ConfigError(f"{name}: file not found, and {path('configs')} holds no study configs")
    close = difflib.get_close_matches(candidate.stem, studies, n=1)
    hint = f"did you mean {close[0]}?" if close else f"try one of: {', '.join(studies)}"
    raise ConfigError(f"{name}: file not found (nor a built-in study; {hint})")


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
        shutil.copytree(builtin_root() / name, target)
        written.append(target)
    return written
