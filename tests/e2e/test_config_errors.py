"""Malformed configs: each gives exit code 1 and one line naming file and field."""

from pathlib import Path

import pytest

from tests.conftest import ROOT, cli

GOOD = (ROOT / "configs" / "smoke.yaml").read_text()

CASES = {
    "unknown_key": (GOOD.replace("replicates: 2", "replicates: 2\nreplicatess: 3"), "replicatess"),
    "typo_suggestion": (
        GOOD.replace("temperature: 0.9", "temprature: 0.9"),
        "did you mean 'temperature'",
    ),
    "wrong_type": (GOOD.replace("count: 3", 'count: "ten"'), "agents.count"),
    "ratio_outside": (GOOD.replace("[0.0, 1.0]", "[0.0, 1.5]"), "alignment_ratios"),
    "empty_languages": (GOOD.replace("[en, ja]", "[]"), "factors.languages"),
    "unknown_language": (GOOD.replace("[en, ja]", "[en, xx]"), "'xx' is not a known language"),
    "duplicate_language": (GOOD.replace("[en, ja]", "[en, en]"), "languages has duplicates"),
    "unknown_endpoint": (GOOD.replace("local-llamacpp", "no-such-endpoint"), "unknown endpoint"),
    "negative_replicates": (GOOD.replace("replicates: 2", "replicates: -1"), "replicates"),
    "temperature_5": (GOOD.replace("temperature: 0.9", "temperature: 5"), "sampling.temperature"),
    "turns_0": (GOOD.replace("turns: 3", "turns: 0"), "conversation.turns"),
    "bad_turn_order": (
        GOOD.replace("channel_format: tagged", "channel_format: xml"),
        "'tagged' or 'json'",
    ),
    "yaml_syntax": (GOOD + "\nfoo: [unclosed\n", "YAML syntax error: line"),
    "duplicate_key": (GOOD + "\nreplicates: 3\n", "duplicate key 'replicates'"),
    "top_level_list": ("- a\n- b\n", "top level must be a dict"),
    "empty_file": ("", "file is empty"),
    "target_too_big": (GOOD.replace("target: 3", "target: 5"), "agents.target"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_one_line(case: str, tmp_path: Path) -> None:
    text, expected = CASES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    for command in ("validate", "plan"):
        result = cli(command, str(path))
        assert result.returncode == 1, result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert str(path) in lines[0]
        assert expected in lines[0]
        assert "Traceback" not in result.stderr


def test_missing_file(tmp_path: Path) -> None:
    result = cli("validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert "nope.yaml: file not found" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(GOOD.replace("Smoke test", "Sm\xf6ke").encode("latin-1"))
    result = cli("validate", str(path))
    assert result.returncode == 1
    assert "not UTF-8 (invalid byte at offset" in result.stderr


def test_inline_key_refused_without_echo(tmp_path: Path) -> None:
    endpoints = tmp_path / "endpoints.yaml"
    endpoints.write_text(
        "endpoints:\n  local-llamacpp:\n    base_url: http://127.0.0.1:1/v1\n"
        "    model: m\n    serves: llama-3.3-70b\n    api_key: sk-SECRET-123456\n"
    )
    (tmp_path / "s.yaml").write_text(GOOD)
    result = cli("validate", str(tmp_path / "s.yaml"))
    assert result.returncode == 1
    assert "api_key_env" in result.stderr and "sk-SECRET" not in result.stderr


def test_builtin_names_resolve() -> None:
    result = cli("validate", "study2")
    assert result.returncode == 0, result.stderr
    assert "1200 simulations" in result.stdout


def test_plan_warns_when_the_cost_may_exceed_the_budget(tmp_path: Path) -> None:
    import json

    shown = cli("plan", "study2")
    assert shown.returncode == 0 and "exceeds budget.usd $1,200.00" in shown.stdout
    assert cli("plan", "study2", "--strict").returncode == 1
    data = json.loads(cli("plan", "study2", "--json").stdout)
    assert data["budget_usd"] == 1200 and len(data["warnings"]) == 2
    assert cli("plan", "smoke", "--strict").returncode == 0  # budget in calls, not dollars
