"""``alignbf merge``: combine shard runs of one study into one run directory.

Shards must hold the same study config, backend and preregistration salt; a
simulation present in several shards keeps its most advanced record (a terminal
status wins over an unfinished one). Responses, attempts and the judge requests recorded
as never answerable are all kept.
"""

from __future__ import annotations

import shutil
from contextlib import ExitStack
from pathlib import Path

from alignbf.errors import ConfigError
from alignbf.store.guard import refuse_foreign_dir
from alignbf.store.store import TERMINAL, Store

IDENTITY_KEYS = ("config", "backend", "seed_salt")


def _identity(store: Store) -> tuple[str | None, ...]:
    return tuple(store.get(key) for key in IDENTITY_KEYS)


def merge_runs(sources: list[Path], into: Path) -> int:
    """Merge shard runs into ``into`` (created, or extended if it is a run of the same study).

    ``into`` is guarded as ``run --run-dir`` is: a file, the current directory or a
    directory of other files is refused before anything is written.

    Returns:
        The number of simulations in the merged run.
    """
    if not sources:
        raise ConfigError("merge: name at least one run directory")
    refuse_foreign_dir(into, "--into")
    with ExitStack() as stack:
        readers = [stack.enter_context(Store(s, readonly=True)) for s in sources]
        identities = {_identity(r) for r in readers}
        if len(identities) != 1:
            raise ConfigError(
                "merge: the runs hold different configs, backends or preregistration locks; "
                "only shards of one study can be merged"
            )
        with Store(into) as target:
            own = _identity(target)
            if own[0] is not None and own not in identities:
                raise ConfigError(f"{into}: holds a run of a different config")
            for key, value in zip(IDENTITY_KEYS, next(iter(identities)), strict=True):
                if value is not None:
                    target.set_fact(key, value)
            for key in ("study",):
                if (value := readers[0].get(key)) is not None:
                    target.set_fact(key, value)
            for source in sources:
                _copy(target, source / "run.sqlite")
            manifest = sources[0] / "manifest.json"
            if manifest.exists():
                shutil.copyfile(manifest, into / "manifest.json")
            return len(target.statuses())


def _copy(target: Store, db: Path) -> None:
    c = target.conn
    c.execute("ATTACH DATABASE ? AS src", (f"file:{db}?mode=ro",))
    try:
        with target.transaction():
            terminal = ", ".join(f"'{s}'" for s in TERMINAL)
            c.execute(
                f"DELETE FROM simulations WHERE status NOT IN ({terminal}) AND sim_id IN "
                f"(SELECT sim_id FROM src.simulations WHERE status IN ({terminal}))"
            )
            c.execute("DELETE FROM messages WHERE sim_id NOT IN (SELECT sim_id FROM simulations)")
            c.execute("INSERT OR IGNORE INTO simulations SELECT * FROM src.simulations")
            c.execute(
                "INSERT OR IGNORE INTO messages SELECT m.* FROM src.messages m JOIN "
                "simulations s USING (sim_id) JOIN src.simulations t USING (sim_id) "
                "WHERE s.status = t.status"
            )
            c.execute("INSERT OR IGNORE INTO calls SELECT * FROM src.calls")
            if c.execute(
                "SELECT 1 FROM src.sqlite_master WHERE name = 'judge_unlabelled'"
            ).fetchone():
                c.execute(
                    "INSERT OR IGNORE INTO judge_unlabelled SELECT * FROM src.judge_unlabelled"
                )
            c.execute(
                "INSERT INTO attempts (sim_id, agent, turn, endpoint, status, detail, latency_s, "
                "at) SELECT sim_id, agent, turn, endpoint, status, detail, latency_s, at "
                "FROM src.attempts"
            )
            c.execute(
                "INSERT INTO deviations (at, kind, detail) SELECT at, kind, detail "
                "FROM src.deviations"
            )
    finally:
        c.execute("DETACH DATABASE src")
