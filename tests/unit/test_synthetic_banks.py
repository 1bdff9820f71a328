"""Structural checks for the synthetic backend's phrase banks (data/synthetic/<lang>.yaml).

The bank loader (``alignbf.engine.phrasebank``) enforces the same structure at run time;
the second half of this module feeds it broken banks and expects one line naming file,
line, entry and problem.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from alignbf.config.study import load_languages
from alignbf.config.yamlfile import load_yaml
from alignbf.engine.synthetic import check_synthetic
from alignbf.errors import ConfigError

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


def _load(lang: str) -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(_path(lang))
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


def test_shipped_banks_pass_the_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIGNBF_HOME", str(SYNTHETIC_DIR.parents[1]))
    check_synthetic(LANGUAGES)


def _set(keys: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        for key in keys[:-1]:
            data = data[key]
        data[keys[-1]] = value

    return edit


def _delete(*keys: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        for key in keys[:-1]:
            data = data[key]
        del data[keys[-1]]

    return edit


def _append(keys: tuple[Any, ...], text: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        for key in keys[:-1]:
            data = data[key]
        data[keys[-1]] += text

    return edit


def _repeat_first(channel: str, category: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        items = data[channel][category]
        data[channel][category] = [*items[:9], items[0]]

    return edit


# Each case: (edit of the English bank, expected one-line error after the path and line,
# text the named line holds).
BROKEN_BANKS: dict[str, tuple[Callable[[dict[str, Any]], None], str, str]] = {
    "language_differs_from_file_name": (
        _set(("language",), "fr"),
        "language: 'fr' does not match the file name en.yaml",
        "language: fr",
    ),
    "channel_missing": (
        _delete("monologue"),
        "monologue: must map each category (coercive, protective, harmony_protective, "
        "conformity, individuation, neutral) to a list of sentences",
        "",
    ),
    "category_missing": (
        _delete("monologue", "conformity"),
        "monologue.conformity: must be a list of at least 10 sentences (missing)",
        "monologue:",
    ),
    "category_not_a_list": (
        _set(("monologue", "neutral"), "just one sentence"),
        "monologue.neutral: must be a list of at least 10 sentences",
        "neutral: just one sentence",
    ),
    "too_few_distinct_sentences": (
        _repeat_first("talk", "coercive"),
        "talk.coercive: 9 distinct sentences; at least 10 are needed",
        "coercive:",
    ),
    "sentence_not_a_string": (
        _set(("monologue", "protective", 2), 5),
        "monologue.protective[2]: must be a non-empty sentence",
        "protective:",
    ),
    "sentence_empty": (
        _set(("talk", "neutral", 0), "  "),
        "talk.neutral[0]: must be a non-empty sentence",
        "neutral:",
    ),
    "unknown_placeholder": (
        _append(("talk", "protective", 0), " Ask {name}."),
        "talk.protective[0]: unknown placeholder {name} (known: {target})",
        "Ask {name}.",
    ),
    "stray_brace": (
        _append(("monologue", "individuation", 1), " Oops}"),
        "monologue.individuation[1]: stray '}' (braces are only for placeholders)",
        "Oops}",
    ),
    "refusal_with_placeholder": (
        _append(("refusal", 0), " Ask {target}."),
        "refusal[0]: unknown placeholder {target} (this text takes no placeholders)",
        "Ask {target}.",
    ),
    "refusal_not_a_list": (
        _set(("refusal",), "I will not."),
        "refusal: must be a list of sentences",
        "refusal: I will not.",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_BANKS))
def test_loader_refuses_broken_bank_in_one_line(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit, expected, line_holds = BROKEN_BANKS[case]
    data = copy.deepcopy(_load("en"))
    edit(data)
    path = tmp_path / "data" / "synthetic" / "en.yaml"
    path.parent.mkdir(parents=True)
    # the synthetic model also reads every language's prompts: the shipped ones
    for name in ("languages.yaml", "prompts"):
        (tmp_path / "data" / name).symlink_to(SYNTHETIC_DIR.parent / name)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, width=10**6), encoding="utf-8")
    monkeypatch.setenv("ALIGNBF_HOME", str(tmp_path))
    with pytest.raises(ConfigError) as raised:
        check_synthetic(["en"])
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path.resolve()}: ")
    assert expected in message, message
    found = re.search(r": line (\d+): ", message)
    if line_holds:
        assert found, message
        line = path.read_text(encoding="utf-8").splitlines()[int(found.group(1)) - 1]
        assert line_holds in line, (message, line)
