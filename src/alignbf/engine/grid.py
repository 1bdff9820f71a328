"""Expand a study into its ordered list of simulation specs.

A simulation's ``sim_id`` hashes its scientific identity only: the study, the cell,
the replicate, the prompt assets of its language, the model and the sampling and
conversation settings. Runtime settings (concurrency, retries, timeouts, endpoints)
never enter it. The API seed and the choice of which agents are alignment-instructed
or individuated derive from the ``sim_id`` (and the optional preregistration salt).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from dataclasses import dataclass
from typing import Any

from alignbf.config.prompts import asset_hash
from alignbf.config.study import Exclusion, Study
from alignbf.errors import ConfigError


@dataclass(frozen=True)
class SimSpec:
    """Everything that defines one simulation (one group conversation)."""

    study: str
    index: int
    sim_id: str
    seed: int
    language: str
    alignment_ratio: float
    individuation_ratio: float
    model: str
    replicate: int
    n_agents: int
    target: int
    turns: int
    turn_order: str
    channel_format: str
    history_window: int | None
    invalid_threshold: float
    temperature: float
    top_p: float
    max_tokens: int
    aligned: tuple[bool, ...]
    individuated: tuple[bool, ...]

    @property
    def cell(self) -> tuple[str, float, float, str]:
        """The design cell: (language, alignment ratio, individuation ratio, model)."""
        return (self.language, self.alignment_ratio, self.individuation_ratio, self.model)

    def to_json(self) -> str:
        """Canonical JSON of the spec (what the store keeps)."""
        return json.dumps(self.__dict__, sort_keys=True, separators=(",", ":"))


def canonical_hash(obj: Any) -> str:
    """SHA-256 hex of the canonical JSON of ``obj``."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def count_of(ratio: float, n: int) -> int:
    """Agents a ratio selects out of ``n``, rounding halves up (0.5 x 3 = 2)."""
    return int(ratio * n + 0.5 + 1e-9)


def _excluded(cell: dict[str, Any], exclusions: list[Exclusion]) -> bool:
    for ex in exclusions:
        if all(
            getattr(ex, key) is None or getattr(ex, key) == cell[key]
            for key in ("language", "alignment_ratio", "individuation_ratio", "model")
        ):
            return True
    return False


def _assignment(seed: int, stream: str, n: int, k: int) -> tuple[bool, ...]:
    chosen = set(random.Random(f"{seed}:{stream}").sample(range(n), k))
    return tuple(i in chosen for i in range(n))


def cells(study: Study) -> list[dict[str, Any]]:
    """The design cells in plan order, exclusions removed."""
    f = study.factors
    out = []
    for model, language, ind, ratio in itertools.product(
        f.models, f.languages, f.individuation_ratios, f.alignment_ratios
    ):
        cell = {
            "language": language,
            "alignment_ratio": ratio,
            "individuation_ratio": ind,
            "model": model,
        }
        if not _excluded(cell, study.exclusions):
            out.append(cell)
    return out


def expand(study: Study, *, seed_salt: str = "") -> list[SimSpec]:
    """All simulations of a study, in a stable order.

    Args:
        study: The validated study.
        seed_salt: Mixed into every seed (the preregistration lock's root hash, when
            locked), so randomisation provably follows registration.
    """
    c, s, a = study.conversation, study.sampling, study.agents
    specs: list[SimSpec] = []
    hashes = {lang: asset_hash(lang) for lang in study.factors.languages}
    for cell in cells(study):
        for rep in range(study.replicates):
            identity = {
                **cell,
                "study": study.name,
                "replicate": rep,
                "prompts": hashes[cell["language"]],
                "agents": a.count,
                "target": a.target,
                "conversation": [c.turns, c.turn_order, c.channel_format, c.history_window],
                "sampling": [s.temperature, s.top_p, s.max_tokens],
            }
            sim_id = canonical_hash(identity)[:20]
            seed = int(canonical_hash([sim_id, seed_salt])[:8], 16) & 0x7FFFFFFF
            specs.append(
                SimSpec(
                    study=study.name,
                    index=len(specs),
                    sim_id=sim_id,
                    seed=seed,
                    replicate=rep,
                    n_agents=a.count,
                    target=a.target,
                    turns=c.turns,
                    turn_order=c.turn_order,
                    channel_format=c.channel_format,
                    history_window=c.history_window,
                    invalid_threshold=c.invalid_threshold,
                    temperature=s.temperature,
                    top_p=s.top_p,
                    max_tokens=s.max_tokens,
                    aligned=_assignment(
                        seed, "aligned", a.count, count_of(cell["alignment_ratio"], a.count)
                    ),
                    individuated=_assignment(
                        seed,
                        "individuated",
                        a.count,
                        count_of(cell["individuation_ratio"], a.count),
                    ),
                    **cell,
                )
            )
    return specs


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``K/N`` (1-based) into a pair, with a one-line error."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected K/N, e.g. 2/4") from None
    if not 1 <= k <= n:
        raise ConfigError(f"--shard {text!r}: K must be between 1 and N")
    return k, n


def shard(specs: list[SimSpec], k: int, n: int) -> list[SimSpec]:
    """The K-th of N disjoint slices (1-based), together covering every spec."""
    return [spec for spec in specs if spec.index % n == k - 1]
