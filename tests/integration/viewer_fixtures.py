"""A small synthetic run in four scripts (en, ar, th, ja) and the viewer served in a thread."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import alignbf
from alignbf.config import assets
from alignbf.report.viewer import RunView, make_server

LANGUAGES = ("en", "ar", "th", "ja")
INJECTED = (
    "<script>window.pwned = 1</script>\"'><b>bold?</b> Honestly, my friend, I do not obey "
    "them today. Respect the dignity of every person, without exception."
)
"""A reply planted in one English simulation: markup that must show as text, a negated
hit (``obey``, protective after "not") and an echo of the alignment prefix (``dignity``)."""


def make_run(run_dir: Path) -> Path:
    """Run 4 languages x 2 alignment ratios, 3 agents x 3 turns (8 simulations, 72 calls)."""
    config = run_dir.parent / "viewer-study.yaml"
    config.write_text(
        "name: viewer\nagents: {count: 3, target: 3}\nconversation: {turns: 3}\n"
        f"factors: {{alignment_ratios: [0.0, 1.0], languages: [{', '.join(LANGUAGES)}], "
        "models: [llama-3.3-70b]}\n"
        "replicates: 1\nendpoints: {llama-3.3-70b: together-llama-3.3-70b}\n"
        f"endpoints_file: {assets.path('configs', 'endpoints.yaml')}\n"
    )
    assert alignbf.run_command(config, run_dir=run_dir).complete
    return run_dir


def plant_reply(run_dir: Path) -> str:
    """Replace the first English talk message of agent 0 with :data:`INJECTED`; returns
    the simulation's id."""
    conn = sqlite3.connect(run_dir / "run.sqlite")
    with conn:
        sim_id, turn = conn.execute(
            "SELECT m.sim_id, m.turn FROM messages m JOIN simulations s USING (sim_id) "
            "WHERE s.language = 'en' AND m.agent = 0 AND m.channel = 'talk' "
            "ORDER BY s.idx, m.turn LIMIT 1"
        ).fetchone()
        conn.execute(
            "UPDATE messages SET text = ? WHERE sim_id = ? AND turn = ? AND agent = 0 "
            "AND channel = 'talk'",
            (INJECTED, sim_id, turn),
        )
    conn.close()
    return str(sim_id)


def whisper_sim(run_dir: Path, language: str | None = None) -> str:
    """A simulation with at least one non-empty whisper (and monologue)."""
    conn = sqlite3.connect(run_dir / "run.sqlite")
    row = conn.execute(
        "SELECT m.sim_id FROM messages m JOIN simulations s USING (sim_id) "
        "WHERE m.channel = 'whisper' AND length(m.text) > 0 AND (? IS NULL OR s.language = ?) "
        "AND EXISTS (SELECT 1 FROM messages n WHERE n.sim_id = m.sim_id "
        "AND n.channel = 'monologue' AND length(n.text) > 0) ORDER BY s.idx LIMIT 1",
        (language, language),
    ).fetchone()
    conn.close()
    assert row is not None, "the synthetic run has no simulation with a whisper"
    return str(row[0])


@contextmanager
def serving(run_dir: Path) -> Iterator[str]:
    """The viewer of ``run_dir`` on a free loopback port; yields its base URL."""
    server = make_server(RunView(run_dir), 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
