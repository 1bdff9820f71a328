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
from alignbf.errors import ConfigError
from alignbf.store.guard import refuse_foreign_dir
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
    refuse_foreign_dir(run_dir, "--run-dir")
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


def default_run_dir(study: Study, backend_name: str) -> Path:
    """``runs/<study>`` for real endpoints, ``runs/<study>-<backend>`` otherwise."""
    suffix = "" if backend_name == "endpoints" else f"-{backend_name.replace(':', '-')}"
    return Path("runs") / f"{study.name}{suffix}"
