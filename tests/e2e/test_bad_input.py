"""Bad input as typed: each case exits non-zero with one line on stderr and no traceback.

The command line runs in-process through ``alignbf.cli.app.main`` (the console entry
point), so each case takes the same path as the installed ``alignbf`` command.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from alignbf.cli.app import main
from alignbf.config import assets
from tests.conftest import ROOT

SMOKE = (ROOT / "configs" / "smoke.yaml").read_text()
ENDPOINTS = (
    "endpoints:\n  local-llamacpp:\n    base_url: {url}\n    model: m\n    serves: llama-3.3-70b\n"
)


@dataclass
class Typed:
    """What one command printed and its exit code."""

    code: int
    stdout: str
    stderr: str

    def one_line_error(self, *needles: str) -> str:
        """Assert a non-zero exit and a single stderr line holding every needle; return it."""
        assert self.code != 0, self.stdout + self.stderr
        assert "Traceback" not in self.stderr, self.stderr
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1, self.stderr
        for needle in needles:
            assert needle in lines[0], lines[0]
        return lines[0]


def typed(*args: str) -> Typed:
    """Run ``alignbf ARGS`` in this process, as the console script does."""
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["alignbf", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv
    return Typed(code, out.getvalue(), err.getvalue())


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


BAD_URLS = {
    "port_letters": ("http://127.0.0.1:abc/v1", "port 'abc' is not a number from 1 to 65535"),
    "ipv6_unclosed": ("http://[::1/v1", "is not a valid URL"),
    "port_too_big": ("http://127.0.0.1:99999/v1", "port '99999' is not a number from 1 to 65535"),
    "no_host": ("http:///v1", "has no host name"),
}


@pytest.mark.parametrize("case", sorted(BAD_URLS))
def test_bad_base_url_option(case: str, tmp_path: Path) -> None:
    url, reason = BAD_URLS[case]
    run_dir = tmp_path / "r"
    result = typed(
        "run", "smoke", "--backend", "endpoints", "--base-url", url, "--run-dir", str(run_dir)
    )
    result.one_line_error("--base-url", reason)
    assert not run_dir.exists()


@pytest.mark.parametrize("case", sorted(BAD_URLS))
def test_bad_base_url_in_endpoints_file(case: str, tmp_path: Path) -> None:
    url, reason = BAD_URLS[case]
    (tmp_path / "endpoints.yaml").write_text(ENDPOINTS.format(url=url))
    config = tmp_path / "s.yaml"
    config.write_text(SMOKE)
    line = typed("validate", str(config)).one_line_error("endpoints.local-llamacpp.base_url")
    assert reason in line and str(tmp_path / "endpoints.yaml") in line


@pytest.fixture(scope="module")
def good_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("good") / "run"
    result = typed("run", "smoke", "--run-dir", str(run_dir), "--quiet")
    assert result.code == 0, result.stderr
    return run_dir


def _broken(kind: str, good: Path) -> bytes:
    data = (good / "run.sqlite").read_bytes()
    if kind == "random":
        return hashlib.sha256(b"seed").digest() * 200
    if kind == "truncated":
        return data[: len(data) // 3]
    if kind == "foreign":  # a well-formed SQLite file of some other program
        import sqlite3

        other = good.parent / "other.sqlite"
        with contextlib.closing(sqlite3.connect(other)) as conn:
            conn.execute("CREATE TABLE notes (text TEXT)")
            conn.commit()
        return other.read_bytes()
    return b""


BROKEN = {
    "random": "not an SQLite file",
    "truncated": "truncated",
    "empty": "the file is empty",
    "foreign": "no calls, messages, migrations, run, simulations table",
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_run_database(kind: str, good_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "broken"
    run_dir.mkdir()
    database = run_dir / "run.sqlite"
    database.write_bytes(_broken(kind, good_run))
    before = _digest(database)
    for command in (
        ("status", str(run_dir)),
        ("export", str(run_dir)),
        ("analyze", str(run_dir)),
        ("run", "smoke", "--run-dir", str(run_dir), "--quiet"),
    ):
        typed(*command).one_line_error(f"{database} is not an alignbf run database", BROKEN[kind])
        assert _digest(database) == before, command
        assert sorted(p.name for p in run_dir.iterdir()) == ["run.sqlite"], command


def test_serve_synthetic_on_a_port_in_use() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = typed("serve-synthetic", "--port", str(port))
    result.one_line_error(f"--port {port}: 127.0.0.1:{port} is already in use", "--port 0")
    assert "listening on" not in result.stdout


def test_serve_synthetic_on_a_port_past_65535() -> None:
    typed("serve-synthetic", "--port", "70000").one_line_error("--port 70000")


def test_a_grid_past_the_bound_is_refused_before_it_is_built(tmp_path: Path) -> None:
    import time

    import yaml

    from alignbf.config.study import load_languages

    data = yaml.safe_load(SMOKE)
    data["factors"]["alignment_ratios"] = [i / 1000 for i in range(1001)]
    data["factors"]["languages"] = list(load_languages())[:16]
    data["replicates"] = 10_000
    config = tmp_path / "huge.yaml"
    config.write_text(yaml.safe_dump(data))
    started = time.monotonic()
    for command in (
        ("validate", str(config)),
        ("plan", str(config)),
        ("run", str(config), "--run-dir", str(tmp_path / "r"), "--quiet"),
    ):
        typed(*command).one_line_error(
            str(config),
            "1,001 alignment ratio(s) x 16 language(s)",
            "= 160,160,000 simulations",
            "more than the 1,000,000 a study may have",
        )
    assert time.monotonic() - started < 10
    assert not (tmp_path / "r").exists()


SILENT = {
    "replicates_true": ("replicates: 2", "replicates: true", "replicates: must be a number"),
    "count_true": ("count: 3", "count: yes", "agents.count: must be a number"),
    "ratio_true": ("[0.0, 1.0]", "[0.0, true]", "factors.alignment_ratios: must be a number"),
    "missing_prereg": ("replicates: 2", "replicates: 2\nprereg: nowhere.yaml", "'nowhere.yaml'"),
}


@pytest.mark.parametrize("case", sorted(SILENT))
def test_accepted_silently_before(case: str, tmp_path: Path) -> None:
    old, new, expected = SILENT[case]
    assert old in SMOKE
    config = tmp_path / f"{case}.yaml"
    config.write_text(SMOKE.replace(old, new))
    for command in ("validate", "plan") if case != "missing_prereg" else ("validate",):
        typed(command, str(config)).one_line_error(str(config), expected)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("local-llamacpp", "no-such-endpoint", "unknown endpoint 'no-such-endpoint'"),
        ("models: [llama-3.3-70b]", "models: [llama-3.3-70b, gpt-9]", "no endpoint serves model"),
    ],
)
def test_a_synthetic_run_checks_the_endpoint_map(
    old: str, new: str, expected: str, tmp_path: Path
) -> None:
    config = tmp_path / "s.yaml"
    config.write_text(SMOKE.replace(old, new))
    run_dir = tmp_path / "r"
    typed("run", str(config), "--run-dir", str(run_dir), "-q").one_line_error(str(config), expected)
    assert not run_dir.exists()


def test_deviation_on_an_unlocked_study(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    result = typed("run", "smoke", "--deviation", "changed temperature", "--run-dir", str(run_dir))
    result.one_line_error("--deviation: the study is not locked", "alignbf prereg lock")
    assert not run_dir.exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "soon"])
def test_backoff_setting_must_be_a_finite_number(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALIGNBF_BACKOFF_S", value)
    run_dir = tmp_path / "r"
    result = typed(
        "run", "smoke", "--backend", "endpoints", "--base-url", "http://127.0.0.1:1/v1",
        "--run-dir", str(run_dir),
    )  # fmt: skip
    result.one_line_error(f"ALIGNBF_BACKOFF_S={value!r}: expected a number, 0 or more")
    assert not run_dir.exists()


def _home_with_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's working directory holding a folder and a file, made the current one."""
    home = tmp_path / "mine"
    (home / "papers").mkdir(parents=True)
    (home / "papers" / "draft.txt").write_text("my draft")
    (home / "notes.txt").write_text("my notes")
    monkeypatch.chdir(home)
    return home


@pytest.mark.parametrize("given", ["", ".", "papers"])
def test_run_dir_that_holds_other_files(
    given: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _home_with_files(tmp_path, monkeypatch)
    target = home / given
    os.chmod(target, 0o755)
    before = sorted(p.name for p in target.iterdir())
    line = typed("run", "smoke", "--run-dir", given, "-q").one_line_error()
    assert "not a run directory" in line
    assert sorted(p.name for p in target.iterdir()) == before
    assert stat.S_IMODE(target.stat().st_mode) == 0o755


def test_an_empty_or_existing_run_dir_is_fine(good_run: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o755)
    assert typed("run", "smoke", "--run-dir", str(empty), "-q", "--limit", "1").code == 0
    assert stat.S_IMODE(empty.stat().st_mode) == 0o755
    assert typed("run", "smoke", "--run-dir", str(good_run), "-q").code == 0


@pytest.mark.parametrize("given", ["", ".", "papers", "notes.txt"])
def test_merge_into_a_dir_that_holds_other_files(
    given: str, good_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = _home_with_files(tmp_path, monkeypatch)
    os.chmod(home, 0o755)
    before = {p.relative_to(home): p.read_bytes() for p in home.rglob("*") if p.is_file()}
    line = typed("merge", str(good_run), "--into", given).one_line_error()
    if given == "notes.txt":
        assert "notes.txt: exists and is not a directory" in line
    else:
        assert "not a run directory" in line
    if given in ("", "."):
        assert "--into '.': the current directory" in line
    after = {p.relative_to(home): p.read_bytes() for p in home.rglob("*") if p.is_file()}
    assert after == before
    assert stat.S_IMODE(home.stat().st_mode) == 0o755


def test_merge_into_a_new_empty_or_run_dir_is_fine(good_run: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for into in (tmp_path / "new", empty, tmp_path / "new"):
        result = typed("merge", str(good_run), "--into", str(into))
        assert result.code == 0, result.stderr
        assert result.stdout.startswith(f"{into}: 8 simulations from 1 run(s)")


def test_verify_a_study_without_a_preregistration() -> None:
    result = typed("prereg", "verify", "smoke")
    assert result.code == 1
    assert "None" not in result.stdout
    assert "smoke: not locked: the study names no preregistration file (prereg:)" in result.stdout


def test_verify_names_the_changed_fields(tmp_path: Path) -> None:
    config = tmp_path / "mini.yaml"
    # The preregistration sits beside the config, so the lock is written there too.
    shutil.copy(assets.path("prereg", "study1.yaml"), tmp_path / "study1.yaml")
    config.write_text(SMOKE.replace("replicates: 2", "replicates: 2\nprereg: study1.yaml"))
    assert typed("prereg", "lock", str(config)).code == 0
    assert (tmp_path / "study1.lock.json").exists()
    config.write_text(config.read_text().replace("temperature: 0.9", "temperature: 0.7"))
    result = typed("prereg", "verify", str(config))
    assert result.code == 1
    assert "mini.yaml: changed since the lock (sampling.temperature)" in result.stdout


def test_a_mistyped_study_name() -> None:
    typed("run", "stduy1", "-q").one_line_error("stduy1: file not found", "did you mean study1?")


def test_no_study_configs_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIGNBF_HOME", str(tmp_path))
    line = typed("validate", "study1").one_line_error("holds no study configs")
    assert "try one of" not in line


def test_a_mistyped_world(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    typed("run", "smoke", "--world", "papr", "--run-dir", str(run_dir)).one_line_error(
        "--world 'papr'", "did you mean paper?", "built-in: echo, format, null, paper"
    )
    assert not run_dir.exists()


def test_provider_drift_reads_as_words(good_run: Path, tmp_path: Path) -> None:
    import shutil
    import sqlite3

    from alignbf.analysis.replicate import provider_drift

    other = tmp_path / "other"
    shutil.copytree(good_run, other)
    with contextlib.closing(sqlite3.connect(other / "run.sqlite")) as conn:
        conn.execute("UPDATE calls SET resolved_model = 'm-2', system_fingerprint = 'fp_b'")
        conn.commit()
    assert provider_drift(other, good_run) == [
        "llama-3.3-70b: synthetic-llama-3.3-70b (fingerprint synthetic-paper)"
        " -> m-2 (fingerprint fp_b)"
    ]


SECRET = "sk-URLKEY-9f8e7d6c"


def _leaks(run_dir: Path) -> list[str]:
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    return [str(p) for p in files if SECRET.encode() in p.read_bytes()]


def test_credentials_in_a_base_url_are_never_stored_or_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.conftest import FAST_ENV, running_server

    for var, value in FAST_ENV.items():
        monkeypatch.setenv(var, value)
    run_dir = tmp_path / "r"
    with running_server() as server:
        url = server.url.replace("http://", f"http://user:{SECRET}@")
        result = typed(
            "run", "smoke", "--backend", "endpoints", "--base-url", url,
            "--run-dir", str(run_dir), "--quiet",
        )  # fmt: skip
        assert result.code == 0, result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert (run_dir / "manifest.json").exists() and (run_dir / "run.sqlite").exists()
    assert _leaks(run_dir) == []
    import sqlite3

    with contextlib.closing(sqlite3.connect(run_dir / "run.sqlite")) as conn:
        endpoints = {row[0] for row in conn.execute("SELECT DISTINCT endpoint FROM calls")}
    assert endpoints == {f"local-llamacpp:{_served_model()}@{server.url}"}
    assert f'"base_url_override": "{server.url}"' in (run_dir / "manifest.json").read_text()


def _served_model() -> str:
    import yaml

    endpoints = yaml.safe_load((ROOT / "configs" / "endpoints.yaml").read_text())["endpoints"]
    return str(endpoints["local-llamacpp"]["model"])


def test_credentials_in_a_base_url_stay_out_of_error_lines(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run_dir = tmp_path / "r"
    url = f"http://user:{SECRET}@127.0.0.1:{port}/v1"
    line = typed(
        "run", "smoke", "--backend", "endpoints", "--base-url", url, "--run-dir", str(run_dir)
    ).one_line_error(f"http://127.0.0.1:{port}/v1")
    assert SECRET not in line
    bad_port = url.replace(f":{port}/", ":abc/")
    bad = typed("run", "smoke", "--backend", "endpoints", "--base-url", bad_port)
    assert SECRET not in bad.one_line_error("--base-url 'http://127.0.0.1:abc/v1'")
    (tmp_path / "endpoints.yaml").write_text(
        ENDPOINTS.format(url=f"http://user:{SECRET}@127.0.0.1:abc/v1")
    )
    (tmp_path / "s.yaml").write_text(SMOKE)
    line = typed("validate", str(tmp_path / "s.yaml")).one_line_error("base_url")
    assert SECRET not in line and "http://127.0.0.1:abc/v1" in line


@pytest.mark.parametrize(
    ("options", "needles"),
    [
        (("--tls-cert", "{tmp}/none.pem", "--tls-key", "{tmp}/none.key"),
         ("--tls-cert {tmp}/none.pem", "cannot load the certificate and key")),
        (("--tls-cert", "{tmp}/none.pem"), ("--tls-cert and --tls-key go together",)),
    ],
    ids=["missing-files", "cert-without-key"],
)  # fmt: skip
def test_serve_synthetic_with_a_broken_certificate(
    tmp_path: Path, options: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    result = typed("serve-synthetic", *(o.format(tmp=tmp_path) for o in options))
    result.one_line_error(*(n.format(tmp=tmp_path) for n in needles))
    assert "listening on" not in result.stdout
