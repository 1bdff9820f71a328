"""Broken assets in a project made by ``alignbf init``: refused in one line, nothing made."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import cli

RUN = ("run", "configs/smoke.yaml", "--backend", "synthetic", "--run-dir", "runs/r", "--quiet")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    made = cli("init", "proj", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    return tmp_path / "proj"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _refused(project: Path, args: tuple[str, ...], *expected: str) -> None:
    result = cli(*args, cwd=project)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert all(part in lines[0] for part in expected), lines[0]
    assert "Traceback" not in result.stderr
    assert not (project / "runs").exists()


def test_persona_template_typo_is_refused(project: Path) -> None:
    prompts = project / "data" / "prompts" / "ja.yaml"
    _edit(prompts, "あなたは{name}、", "あなたは{nmae}、")
    expected = (
        f"{prompts}: line 42: persona_template: unknown placeholder {{nmae}} "
        "(known: {name}, {role}, {temperament}, {others})"
    )
    for args in (("validate", "configs/smoke.yaml"), ("plan", "configs/smoke.yaml"), RUN):
        _refused(project, args, expected)


def test_phrase_bank_typo_is_refused_by_the_synthetic_backend(project: Path) -> None:
    bank = project / "data" / "synthetic" / "ja.yaml"
    _edit(bank, "{target}", "{taget}")
    _refused(project, RUN, f"{bank}: line ", "unknown placeholder {taget} (known: {target})")
    assert cli("validate", "configs/smoke.yaml", cwd=project).returncode == 0


def test_prompts_of_a_language_outside_the_study_are_checked_for_the_synthetic_backend(
    project: Path,
) -> None:
    """The synthetic model reads every language's prompts to recognise a condition."""
    prompts = project / "data" / "prompts" / "th.yaml"
    _edit(prompts, "{name}", "{nmae}")
    assert cli("validate", "configs/smoke.yaml", cwd=project).returncode == 0
    _refused(project, RUN, f"{prompts}: line ", "unknown placeholder {nmae}")
