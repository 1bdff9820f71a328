"""alignbf: run, score and analyse preregistered multi-agent LLM studies.

The public API mirrors the CLI, one call per command::

    import alignbf
    plan = alignbf.plan_study("study1")
    result = alignbf.run_command("study1", backend="synthetic")
    scores = alignbf.score_run(result.run_dir)
    analysis = alignbf.analyze_run(result.run_dir)

Names are imported on first use, so ``import alignbf`` (and ``alignbf --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "AlignbfError": "alignbf.errors",
    "AnalysisError": "alignbf.errors",
    "ConfigError": "alignbf.errors",
    "EndpointError": "alignbf.errors",
    "StoreError": "alignbf.errors",
    "SimSpec": "alignbf.engine.grid",
    "Study": "alignbf.config.study",
    "analyze_run": "alignbf.analysis.analyze",
    "expand": "alignbf.engine.grid",
    "export_run": "alignbf.store.export",
    "load_study": "alignbf.config.study",
    "plan_study": "alignbf.api",
    "run_command": "alignbf.api",
    "run_study": "alignbf.engine.runner",
    "score_run": "alignbf.scoring.scores",
    "validate_study": "alignbf.api",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'alignbf' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
