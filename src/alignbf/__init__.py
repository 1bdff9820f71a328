"""alignbf: run, score and analyse preregistered multi-agent LLM studies.

The public API mirrors the CLI, one call per command::

    import alignbf
    plan = alignbf.plan_study("study1")
    result = alignbf.run_command("study1")  # in a notebook also: await alignbf.arun_study(...)
    run = alignbf.open_run(result.run_dir)  # read-only, no lock
    run.messages(); run.scores(); run.verdicts()  # pandas DataFrames
    analysis = alignbf.analyze_run(result.run_dir)

Names are imported on first use, so ``import alignbf`` (and ``alignbf --help``) stays fast;
type checkers see the real definitions through the ``TYPE_CHECKING`` imports below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from alignbf.analysis.analyze import analyze_run
    from alignbf.api import Run, arun_study, open_run, plan_study, run_command, validate_study
    from alignbf.config.study import Study, load_study
    from alignbf.engine.grid import SimSpec, expand
    from alignbf.engine.runner import run_study
    from alignbf.errors import AlignbfError, AnalysisError, ConfigError, EndpointError, StoreError
    from alignbf.scoring.scores import score_run
    from alignbf.store.export import export_run

_EXPORTS = {
    "AlignbfError": "alignbf.errors",
    "AnalysisError": "alignbf.errors",
    "ConfigError": "alignbf.errors",
    "EndpointError": "alignbf.errors",
    "Run": "alignbf.api",
    "SimSpec": "alignbf.engine.grid",
    "StoreError": "alignbf.errors",
    "Study": "alignbf.config.study",
    "analyze_run": "alignbf.analysis.analyze",
    "arun_study": "alignbf.api",
    "expand": "alignbf.engine.grid",
    "export_run": "alignbf.store.export",
    "load_study": "alignbf.config.study",
    "open_run": "alignbf.api",
    "plan_study": "alignbf.api",
    "run_command": "alignbf.api",
    "run_study": "alignbf.engine.runner",
    "score_run": "alignbf.scoring.scores",
    "validate_study": "alignbf.api",
}

__all__ = [
    "AlignbfError",
    "AnalysisError",
    "ConfigError",
    "EndpointError",
    "Run",
    "SimSpec",
    "StoreError",
    "Study",
    "__version__",
    "analyze_run",
    "arun_study",
    "expand",
    "export_run",
    "load_study",
    "open_run",
    "plan_study",
    "run_command",
    "run_study",
    "score_run",
    "validate_study",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'alignbf' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
