"""Run directories: open or create one for a study, refuse one that holds something else,
and write its manifest (versions, config hash, backend)."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from alignbf import __version__
from alignbf.config.study import Study
from alignbf.config.yamlfile import read_text
from alignbf.engine.grid import canonical_hash
from alignbf.errors import ConfigError, StoreError
from alignbf.store.store import Store, write_manifest


def _manifest(
    study: Study, config_path: Path, backend: str, extra: dict[str, Any]
) -> dict[str, Any]:
    import importlib.metadata as md

    packages: dict[str, str | None] = {}
    for name in ("httpx", "pydantic", "pandas", "statsmodels", "scipy", "tenacity"):
        try:
            packages[name] = md.version(name)
        except md.PackageNotFoundError:
            packages[name] = None
    return {
        "alignbf_version": __version__,
        "python": platform.python_version(),
        "packages": packages,
        "study": study.name,
        "config_path": str(config_path),
        "config_sha256": canonical_hash(read_text(config_path)),
        "backend": backend,
        **extra,
    }


def open_run(
    study: Study, config_path: Path, run_dir: Path, backend_name: str, extra: dict[str, Any]
) -> Store:
    """Open (or create) a run directory for this study; refuse one holding another config."""
    if run_dir.exists() and not run_dir.is_dir():
        raise StoreError(f"{run_dir}: exists and is not a directory")
    _refuse_foreign_dir(run_dir)
    store = Store(run_dir)
    config_text = read_text(config_path)
    stored = store.get("config")
    if stored is not None and stored != config_text:
        store.close()
        raise ConfigError(
            f"{run_dir}: holds a run of a different config than {config_path}; "
            "use a new --run-dir (mixing parameters in one run is refused)"
        )
    stored_backend = store.get("backend")
    if stored_backend is not None and stored_backend != backend_name:
        store.close()
        raise ConfigError(
            f"{run_dir}: was run with backend {stored_backend!r}, not {backend_name!r}; "
            "a different backend is a different condition"
        )
    if stored is None:
        store.set_fact("config", config_text)
        store.set_fact("study", study.name)
        store.set_fact("backend", backend_name)
    write_manifest(run_dir, _manifest(study, config_path, backend_name, extra))
    return store


def _refuse_foreign_dir(run_dir: Path) -> None:
    """Refuse to start a run inside a directory of other files (or the current directory)."""
    if not run_dir.is_dir() or (run_dir / "run.sqlite").exists():
        return
    if run_dir.resolve() == Path.cwd().resolve():
        raise StoreError(
            f"--run-dir {str(run_dir)!r}: the current directory is not a run directory; "
            "name a new one, e.g. runs/NAME"
        )
    others = sorted(p.name for p in run_dir.iterdir() if p.name != ".lock")
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise StoreError(
            f"{run_dir}: not a run directory and not empty ({len(others)} entries: {shown}); "
            "name a new or empty directory for the run"
        )


def default_run_dir(study: Study, backend_name: str) -> Path:
    """``runs/<study>`` for real endpoints, ``runs/<study>-<backend>`` otherwise."""
    suffix = "" if backend_name == "endpoints" else f"-{backend_name.replace(':', '-')}"
    return Path("runs") / f"{study.name}{suffix}"
