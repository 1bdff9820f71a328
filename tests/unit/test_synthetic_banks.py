"""Structural checks for the synthetic backend's phrase banks (data/synthetic/<lang>.yaml)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from alignbf.config.study import load_languages

SYNTHETIC_DIR = Path(__file__).resolve().parents[2] / "data" / "synthetic"

LANGUAGES = list(load_languages())
CHANNELS = ["talk", "monologue"]
CATEGORIES = [
    "coercive",
    "protective",
    "harmony_protective",
    "conformity",
    "individuation",
    "neutral",
]
MIN_SENTENCES = 10
PLACEHOLDER_RE = re.compile(r"\{[^}]*\}")
ALLOWED_PLACEHOLDER = "{target}"
HEADER_PREFIX = "# alignbf synthetic phrase bank"


def _path(lang: str) -> Path:
    return SYNTHETIC_DIR / f"{lang}.yaml"


def _load(lang: str) -> dict:
    with _path(lang).open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict), f"{lang}: top level must be a mapping"
    return data


@pytest.mark.parametrize("lang", LANGUAGES)
def test_bank_file_exists(lang: str) -> None:
    assert _path(lang).is_file(), f"missing phrase bank {_path(lang)}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_header_comment_present(lang: str) -> None:
    first_line = _path(lang).read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith(HEADER_PREFIX), f"{lang}: header comment missing"
    assert f"({lang})" in first_line, f"{lang}: header must name the language code"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_language_field_matches_file(lang: str) -> None:
    assert _load(lang).get("language") == lang


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("category", CATEGORIES)
def test_category_has_enough_unique_sentences(lang: str, channel: str, category: str) -> None:
    data = _load(lang)
    assert isinstance(data.get(channel), dict), f"{lang}: channel {channel!r} missing"
    items = data[channel].get(category)
    assert isinstance(items, list), f"{lang}.{channel}: category {category!r} missing"
    for item in items:
        assert isinstance(item, str), f"{lang}.{channel}.{category}: non-string {item!r}"
        assert item.strip(), f"{lang}.{channel}.{category}: empty sentence"
    unique = {item.strip() for item in items}
    assert len(unique) >= MIN_SENTENCES, (
        f"{lang}.{channel}.{category}: {len(unique)} unique sentences, need {MIN_SENTENCES}"
    )


@pytest.mark.parametrize("lang", LANGUAGES)
def test_only_target_placeholder(lang: str) -> None:
    data = _load(lang)
    for channel in CHANNELS:
        for category in CATEGORIES:
            for sentence in data[channel][category]:
                hits = PLACEHOLDER_RE.findall(sentence)
                assert all(hit == ALLOWED_PLACEHOLDER for hit in hits), (
                    f"{lang}.{channel}.{category}: bad placeholder in {sentence!r}"
                )
                stray = sentence.replace(ALLOWED_PLACEHOLDER, "")
                assert "{" not in stray and "}" not in stray, (
                    f"{lang}.{channel}.{category}: stray brace in {sentence!r}"
                )
