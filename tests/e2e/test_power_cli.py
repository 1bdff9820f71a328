"""`alignbf power` as typed, on a reduced Study 1 (the paper world plants both contrasts)."""

from __future__ import annotations

import json
from pathlib import Path

from alignbf.config import assets
from tests.conftest import cli


def test_power_reports_each_confirmatory_hypothesis(tmp_path: Path) -> None:
    config = tmp_path / "study1.yaml"
    config.write_text(
        "name: study1\nagents: {count: 4, target: 4}\nconversation: {turns: 6}\n"
        "factors: {alignment_ratios: [0.0, 1.0], languages: [en, ja], models: [llama-3.3-70b]}\n"
        "replicates: 6\nendpoints: {llama-3.3-70b: together-llama-3.3-70b}\n"
        f"endpoints_file: {assets.path('configs', 'endpoints.yaml')}\n"
        f"prereg: {assets.path('prereg', 'study1.yaml')}\n"
    )
    result = cli("power", str(config), "--sims", "20", "--max-replicates", "6", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    powered = {row["id"] for row in out["power"]}
    assert powered == {"s1_en_cpi", "s1_ja_cpi", "s1_cpi_interaction"}
    assert set(out["skipped"]) == {"s1_ja_harmony_share", "s1_ja_conformity_ratio"}
    assert all(0.0 <= row["power"] <= 1.0 for row in out["power"])
    sizes = sorted({row["replicates"] for row in out["power"]})
    assert sizes[-1] == 6 and all(row["cost_usd"] is not None for row in out["power"])
    # more replicates never buy less power on average over the two contrasts
    by_size = {r: sum(x["power"] for x in out["power"] if x["replicates"] == r) for r in sizes}
    assert by_size[sizes[-1]] >= by_size[sizes[0]]


def test_power_is_reproducible_and_never_falls_with_size(tmp_path: Path) -> None:
    config = tmp_path / "study1.yaml"
    config.write_text(
        "name: study1\nagents: {count: 3, target: 3}\nconversation: {turns: 4}\n"
        "factors: {alignment_ratios: [0.0, 1.0], languages: [en, ja], models: [llama-3.3-70b]}\n"
        "replicates: 10\nendpoints: {llama-3.3-70b: together-llama-3.3-70b}\n"
        f"endpoints_file: {assets.path('configs', 'endpoints.yaml')}\n"
        f"prereg: {assets.path('prereg', 'study1.yaml')}\n"
    )
    args = (
        "power",
        str(config),
        "--world",
        "null",
        "--sims",
        "20",
        "--max-replicates",
        "10",
        "--json",
    )
    first, second = cli(*args), cli(*args)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    rows = json.loads(first.stdout)["power"]
    for hid in {row["id"] for row in rows}:
        mine = sorted((r for r in rows if r["id"] == hid), key=lambda r: r["replicates"])
        powers = [r["power"] for r in mine]
        assert powers == sorted(powers), (hid, powers)
        for r in mine:
            expected = (r["power_raw"] * (1 - r["power_raw"]) / 20) ** 0.5
            assert abs(r["mc_se"] - expected) < 1e-12
    assert cli(*args[:-1], "--seed", "1", "--json").stdout != first.stdout
