"""The guard on a directory a run is about to be written into (``run --run-dir``,
``merge --into``): a run goes into a new directory, an empty one or a run directory, never
into a file, the current directory or a directory of other files."""

from __future__ import annotations

from pathlib import Path

from alignbf.errors import StoreError


def refuse_foreign_dir(run_dir: Path, option: str) -> None:
    """Refuse ``run_dir`` unless it is missing, empty or a run directory.

    ``option`` names the command-line option that gave the directory (``--run-dir``), for
    the message. Nothing is created or changed.

    Raises:
        StoreError: ``run_dir`` is a file, the current directory (``''`` or ``.``) without
            a run, or a directory of other files.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise StoreError(f"{run_dir}: exists and is not a directory")
    if not run_dir.is_dir() or (run_dir / "run.sqlite").exists():
        return
    if run_dir.resolve() == Path.cwd().resolve():
        raise StoreError(
            f"{option} {str(run_dir)!r}: the current directory is not a run directory; "
            "name a new one, e.g. runs/NAME"
        )
    others = sorted(p.name for p in run_dir.iterdir() if p.name != ".lock")
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise StoreError(
            f"{run_dir}: not a run directory and not empty ({len(others)} entries: {shown}); "
            "name a new or empty directory for the run"
        )
