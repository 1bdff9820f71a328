"""Core entry points behind the CLI commands (the same calls work from a notebook)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alignbf.config.assets import find_config
from alignbf.config.endpoints import check_endpoints
from alignbf.config.study import load_study
from alignbf.engine.grid import expand
from alignbf.engine.plan import Plan, make_plan
from alignbf.engine.runner import Progress, RunResult, run_study
from alignbf.transport.backend import Backend


def validate_study(config: str | Path) -> str:
    """Validate a study config and everything it refers to; return a one-paragraph summary."""
    path = find_config(config)
    study = load_study(path)
    check_endpoints(study, path)
    specs = expand(study)
    f = study.factors
    return (
        f"{path}: ok — study {study.name!r}: {len(specs)} simulations = "
        f"{len(f.languages)} language(s) x {len(f.alignment_ratios)} alignment ratio(s) x "
        f"{len(f.individuation_ratios)} individuation level(s) x {len(f.models)} model(s) x "
        f"{study.replicates} replicates"
        + (f" - {len(study.exclusions)} exclusion rule(s)" if study.exclusions else "")
        + f"; {study.agents.count} agents x {study.conversation.turns} turns"
    )


def plan_study(config: str | Path) -> Plan:
    """The plan (cells, calls, tokens, cost) of a study."""
    path = find_config(config)
    return make_plan(load_study(path), path)


def make_backend(
    config: str | Path, backend: str, world: str | None, base_url: str | None
) -> tuple[Backend, str, dict[str, object]]:
    """Build the backend a run asks for; returns it, its recorded name and manifest facts."""
    from alignbf.errors import ConfigError

    if backend == "synthetic":
        from alignbf.engine.synthetic import SyntheticBackend, load_world

        w = load_world(world)
        return SyntheticBackend(w), f"synthetic:{w.name}", {"world": w.model_dump()}
    if backend == "endpoints":
        from alignbf.transport.client import endpoints_backend

        return endpoints_backend(find_config(config), base_url)
    raise ConfigError(f"--backend {backend!r}: accepted: synthetic, endpoints")


def run_command(
    config: str | Path,
    *,
    backend: str = "synthetic",
    world: str | None = None,
    run_dir: Path | None = None,
    limit: int | None = None,
    shard: str | None = None,
    concurrency: int = 64,
    base_url: str | None = None,
    deviation: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    retry_failed: bool = False,
) -> RunResult:
    """Check the preregistration lock, build the backend and run (or resume) the study."""
    from alignbf.analysis.prereg import gate

    salt, deviations = gate(config, deviation)
    instance, name, extra = make_backend(config, backend, world, base_url)
    return run_study(
        config,
        backend=instance,
        backend_name=name,
        run_dir=run_dir,
        concurrency=concurrency,
        shard_text=shard,
        limit=limit,
        manifest_extra=extra,
        on_progress=on_progress,
        seed_salt=salt,
        deviations=deviations,
        retry_failed=retry_failed,
    )
