"""Preregistration integrity: lock what defines a study, verify it, gate runs on it.

``alignbf prereg lock CONFIG`` hashes everything that defines the study (the study
config, its preregistration, the prompts and lexicons of its languages, the
language registry, the scorer and index versions, the endpoint model ids and the
alignbf version) into ``<prereg>.lock.json`` beside the preregistration. YAML files
are hashed in a canonical serialisation (parsed, then JSON with sorted keys), so a
comment or re-indentation is not a change but any value is. The lock holds a
per-item hash table and a root hash over it; seeds of a locked study derive from
the root hash, so randomisation provably follows registration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignbf import __version__
from alignbf.config import assets
from alignbf.config.study import Study, load_study, resolve_relative
from alignbf.config.yamlfile import load_yaml
from alignbf.engine.grid import canonical_hash
from alignbf.errors import ConfigError

LOCK_FORMAT = 1


@dataclass(frozen=True)
class Lock:
    """The hashed definition of a study."""

    study: str
    items: dict[str, str]
    """label -> sha256 (files) or value (versions, model ids)."""
    root: str
    fields: dict[str, dict[str, str]] = field(default_factory=dict)
    """label of the study config and preregistration -> field path -> sha256 of its value,
    so a difference names the fields that changed; not part of the root hash."""

    def to_json(self) -> str:
        """Canonical JSON of the lock file."""
        body: dict[str, Any] = {
            "format": LOCK_FORMAT, "study": self.study, "items": self.items, "root": self.root,
        }  # fmt: skip
        if self.fields:
            body["fields"] = self.fields
        return json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _label(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(assets.root().resolve()))
    except ValueError:
        return path.name


def _file_hash(path: Path) -> str:
    return canonical_hash(load_yaml(path))


def _flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """Field path (``sampling.temperature``, ``hypotheses[2].alpha``) -> hash of its value."""
    if isinstance(data, list) and any(isinstance(item, dict) for item in data):
        out = {f"{prefix}(length)": canonical_hash(len(data))}
        for i, item in enumerate(data):
            out.update(_flatten(item, f"{prefix}[{i}]"))
        return out
    if not isinstance(data, dict) or not data:
        return {prefix or "(top level)": canonical_hash(data)}
    out = {}
    for key, value in data.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _fields(study: Study, config_path: Path) -> dict[str, dict[str, str]]:
    files = [config_path]
    prereg = prereg_path(study, config_path)
    if prereg is not None:
        files.append(prereg)
    return {_label(p): _flatten(load_yaml(p)) for p in files}


def prereg_path(study: Study, config_path: Path) -> Path | None:
    """The study's preregistration file, or None when it names none."""
    if study.prereg is None:
        return None
    return resolve_relative(config_path, study.prereg, "prereg")


def lock_path(study: Study, config_path: Path) -> Path | None:
    """Where the study's lock file lives (beside the preregistration)."""
    prereg = prereg_path(study, config_path)
    return None if prereg is None else prereg.with_suffix(".lock.json")


def _items(study: Study, config_path: Path) -> dict[str, str]:
    from alignbf.config.endpoints import check_endpoints
    from alignbf.scoring.indices import INDICES_VERSION
    from alignbf.scoring.lexicon import load_lexicon
    from alignbf.scoring.measures import MEASURES_VERSION

    files = [config_path, assets.path("data", "languages.yaml")]
    prereg = prereg_path(study, config_path)
    if prereg is not None:
        files.append(prereg)
    for lang in study.factors.languages:
        files.append(assets.path("data", "prompts", f"{lang}.yaml"))
        files.append(assets.path("data", "lexicons", f"{lang}.yaml"))
    items = {f"file:{_label(p)}": _file_hash(p) for p in files}
    items["version:alignbf"] = __version__
    items["version:measures"] = MEASURES_VERSION
    items["version:indices"] = INDICES_VERSION
    for lang in study.factors.languages:
        items[f"version:lexicon:{lang}"] = load_lexicon(lang).version
    endpoints = check_endpoints(study, config_path)
    for model, name in sorted(study.endpoints.items()):
        items[f"model:{model}"] = f"{name}:{endpoints[name].model}"
    return items


def compute_lock(config: str | Path) -> tuple[Lock, Study, Path]:
    """Hash what defines a study now."""
    config_path = assets.find_config(config)
    study = load_study(config_path)
    items = _items(study, config_path)
    lock = Lock(study.name, items, canonical_hash(items), _fields(study, config_path))
    return lock, study, config_path


def write_lock(config: str | Path) -> Path:
    """Write the study's lock file; returns its path."""
    lock, study, config_path = compute_lock(config)
    path = lock_path(study, config_path)
    if path is None:
        raise ConfigError(f"{config_path}: names no preregistration file (prereg:) to lock")
    path.write_text(lock.to_json(), encoding="utf-8")
    return path


def read_lock(path: Path) -> Lock:
    """Read a lock file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        fields = {str(k): dict(v) for k, v in dict(data.get("fields", {})).items()}
        return Lock(data["study"], dict(data["items"]), str(data["root"]), fields)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: unreadable lock file ({exc})") from None


def differences(locked: Lock, current: Lock) -> list[str]:
    """Every difference between two locks, one line each."""
    out = []
    for key in sorted(set(locked.items) | set(current.items)):
        before, after = locked.items.get(key), current.items.get(key)
        kind, _, name = key.partition(":")
        if before == after:
            continue
        if before is None:
            out.append(f"{name}: added since the lock")
        elif after is None:
            out.append(f"{name}: removed since the lock")
        elif kind == "file":
            out.append(f"{name}: changed since the lock{_changed_fields(locked, current, name)}")
        else:
            out.append(f"{kind} {name}: {before} -> {after}")
    return out


def _changed_fields(locked: Lock, current: Lock, label: str) -> str:
    """`` (a.b, c)``: the fields of a locked YAML file whose values differ, when known."""
    before, after = locked.fields.get(label), current.fields.get(label)
    if before is None or after is None:
        return ""
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if not changed:
        return ""
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    return f" ({shown})"


@dataclass(frozen=True)
class Verification:
    """The result of comparing a study with its lock."""

    lock_file: Path | None
    locked: Lock | None
    differences: list[str]

    @property
    def locked_ok(self) -> bool:
        """True when a lock exists and nothing differs."""
        return self.locked is not None and not self.differences


def verify(config: str | Path) -> Verification:
    """Compare the study as it is now with its lock file (if any)."""
    config_path = assets.find_config(config)
    path = lock_path(load_study(config_path), config_path)
    if path is None or not path.exists():
        return Verification(path, None, [])
    locked = read_lock(path)
    current, _, _ = compute_lock(config_path)
    return Verification(path, locked, differences(locked, current))


def gate(config: str | Path, deviation: str | None) -> tuple[str, list[tuple[str, str]]]:
    """Decide whether a run may start; returns the seed salt and deviations to record.

    A locked study that differs from its lock is refused unless ``deviation`` gives
    the reason; then each difference is recorded as a deviation.
    """
    result = verify(config)
    if result.locked is None and deviation is not None:
        where = f"no {result.lock_file}" if result.lock_file else "its config names no prereg: file"
        raise ConfigError(
            f"--deviation: the study is not locked ({where}), so there is nothing to deviate "
            "from; drop --deviation, or run `alignbf prereg lock` first"
        )
    if result.locked is None:
        notes = [("unlocked", "study has no preregistration lock; all analyses are exploratory")]
        return "", notes
    if not result.differences:
        return result.locked.root, [("deviation", deviation)] if deviation else []
    if not deviation:
        first = result.differences[0]
        more = f" (and {len(result.differences) - 1} more)" if len(result.differences) > 1 else ""
        raise ConfigError(
            f"{result.lock_file}: study differs from its preregistration lock: {first}{more}; "
            'run `alignbf prereg verify` to see all, or pass --deviation "why"'
        )
    notes = [("deviation", deviation)] + [("drift", d) for d in result.differences]
    return result.locked.root, notes


def lock_summary(lock: Lock) -> dict[str, Any]:
    """A short JSON-able description of a lock."""
    return {"study": lock.study, "root": lock.root, "items": len(lock.items)}
