"""The synthetic oracle: every sentence's kind is recovered from the text, and agreement
statistics on binary labels match a worked example."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from alignbf.analysis.validity import agreement, attenuation_table
from alignbf.config.prompts import load_prompts
from alignbf.config.study import load_languages
from alignbf.engine.synthetic import ECHO, SyntheticModel, load_world, oracle_sentences
from alignbf.transport.backend import ChatRequest

TAG = re.compile(r"^\[(TALK|MONOLOGUE|WHISPER:[^\]]+)\] ?(.*)$")


def _request(language: str, seed: int, aligned: bool, turn: int) -> ChatRequest:
    prompts = load_prompts(language)
    system = prompts.system_prompt(
        seed % 10, 10, aligned=aligned, individuated=seed % 3 == 0, channel_format="tagged"
    )
    user = f"{prompts.turn_header.format(turn=turn, turns=15)}\n{prompts.event(turn, 1)}"
    messages = ({"role": "system", "content": system}, {"role": "user", "content": user})
    return ChatRequest("s", 0, turn, "llama-3.3-70b", messages, 0.9, 1.0, 768, seed)


@pytest.mark.parametrize("language", list(load_languages()))
def test_oracle_recovers_the_kind_of_every_generated_sentence(language: str) -> None:
    model = SyntheticModel(load_world("echo"))
    echoes = 0
    for seed in range(60):
        text, labels = model.labelled_reply(_request(language, seed, seed % 2 == 0, seed % 15 + 1))
        if not labels:  # a reply that ignored the channel format
            continue
        for line in text.splitlines():
            tag, body = TAG.match(line).groups()  # type: ignore[union-attr]
            channel = tag.split(":")[0].lower()
            kinds = [kind for kind, _, _ in oracle_sentences(language, body)]
            assert kinds == labels[channel], (line, labels[channel])
            echoes += kinds.count(ECHO)
    assert echoes > 0


def test_agreement_matches_a_worked_kappa_example() -> None:
    # 50 items: both yes 20, A yes / B no 5, A no / B yes 10, both no 15 (Wikipedia's
    # "Cohen's kappa" example): p_o = 0.7, p_e = 0.5, kappa = 0.4.
    truth = np.array([1] * 20 + [1] * 5 + [0] * 10 + [0] * 15)
    predicted = np.array([1] * 20 + [0] * 5 + [1] * 10 + [0] * 15)
    stats = agreement(truth, predicted)
    assert stats["kappa"] == pytest.approx(0.4)
    assert stats["precision"] == pytest.approx(20 / 30)
    assert stats["recall"] == pytest.approx(20 / 25)
    assert stats["f1"] == pytest.approx(2 * 20 / 55)
    assert stats["false_positive_rate"] == pytest.approx(10 / 25)


def _frame(values_high: list[float], values_low: list[float]) -> pd.DataFrame:
    values = values_high + values_low
    return pd.DataFrame(
        dict(
            sim_id=[f"s{i}" for i in range(len(values))],
            language="en",
            individuation_ratio=0.0,
            alignment_ratio=[1.0] * len(values_high) + [0.0] * len(values_low),
            cpi=values,
            di=[-v for v in values],
        )
    )


def test_attenuation_gives_g_and_a_paired_interval_for_the_gap() -> None:
    high, low = [1.0, 2.0, 4.0, 3.5, 2.5], [0.0, 1.5, -1.0, 0.5, 1.0]
    lexicon = _frame(high, low)
    table = attenuation_table(lexicon, lexicon.copy())
    cpi = table.set_index("outcome").loc["cpi"]
    # Hedges' g by hand: means 2.6 and 0.4, sums of squares 5.7 and 3.7, pooled variance
    # 9.4 / 8 = 1.175, exact J(8) = Γ(4) / (2 Γ(3.5)) = 6 / (2 * 3.32335) = 0.90270.
    assert cpi["g_oracle"] == pytest.approx(0.90270 * 2.2 / 1.175**0.5, abs=1e-4)
    assert cpi["ratio"] == pytest.approx(1.0)
    # The same simulations for both g: an identical instrument differs by exactly 0.
    assert (cpi["difference_ci_low"], cpi["difference_ci_high"]) == (0.0, 0.0)
    # A noisier lexicon: the interval is paired and covers the observed gap.
    noisy = _frame([v + e for v, e in zip(high, [0.9, -1.1, 0.4, -0.8, 1.2], strict=True)], low)
    gap = attenuation_table(noisy, lexicon).set_index("outcome").loc["cpi"]
    assert gap["difference"] == pytest.approx(gap["g_lexicon"] - gap["g_oracle"])
    assert gap["difference_ci_low"] < gap["difference"] < gap["difference_ci_high"]
    assert gap["difference_ci_low"] < 0
