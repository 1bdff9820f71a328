"""Checks on the translated prompt assets in data/prompts/<lang>.yaml.

English (en.yaml) is the source text; the other 15 languages are translations that must keep
the same structure: the same keys, 10 personas, 15 scripted events, the literal ASCII reply
tags and JSON keys, and exactly the same placeholders per key as English.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from alignbf.config.study import load_languages

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "data" / "prompts"

SOURCE_LANGUAGE = "en"
LANGUAGES = tuple(load_languages())
TRANSLATIONS = tuple(lang for lang in LANGUAGES if lang != SOURCE_LANGUAGE)

TOP_LEVEL_KEYS = (
    "language",
    "version",
    "review",
    "personas",
    "persona_template",
    "alignment_prefix",
    "individuation_instruction",
    "channel_format",
    "turn_header",
    "event_label",
    "record_label",
    "whisper_label",
    "no_record",
    "reply_prompt",
    "events",
)
TEXT_KEYS = (
    "persona_template",
    "alignment_prefix",
    "individuation_instruction",
    "turn_header",
    "event_label",
    "record_label",
    "whisper_label",
    "no_record",
    "reply_prompt",
)
CHANNEL_KEYS = ("tagged", "json")
PERSONA_KEYS = ("name", "role", "temperament")
N_PERSONAS = 10
N_EVENTS = 15

REVIEW_SOURCE = "source"
REVIEW_PENDING = "awaiting native-speaker review"
HEADER_PENDING = "# Translation of the English source; awaits review by a native speaker."
HEADER_SOURCE_MARKER = "source text"

PLACEHOLDER_RE = re.compile(r"\{(name|role|temperament|others|turn|turns|speaker|target)\}")
WHISPER_EXAMPLE_RE = re.compile(r"^\[WHISPER:([^\]]+)\]", re.MULTILINE)


@cache
def _raw(lang: str) -> str:
    return (PROMPTS_DIR / f"{lang}.yaml").read_text(encoding="utf-8")


@cache
def _load(lang: str) -> dict[str, Any]:
    data = yaml.safe_load(_raw(lang))
    assert isinstance(data, dict), f"{lang}.yaml does not hold a mapping"
    return data


def _placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER_RE.findall(text))


def _text_fields(data: dict[str, Any]) -> dict[str, str]:
    """Every translatable string of one file, keyed by a stable path such as events[3]."""
    fields = {key: data[key] for key in TEXT_KEYS}
    for key in CHANNEL_KEYS:
        fields[f"channel_format.{key}"] = data["channel_format"][key]
    for i, event in enumerate(data["events"]):
        fields[f"events[{i}]"] = event
    for i, persona in enumerate(data["personas"]):
        for key in PERSONA_KEYS:
            fields[f"personas[{i}].{key}"] = persona[key]
    return fields


def _call_names(data: dict[str, Any]) -> set[str]:
    """How residents address each other: the first word of each name.

    alignbf fills {target} and {speaker} with this word and resolves whisper recipients by
    it, so every language writes its names with the usual form of address first (the given
    name in most languages, the family name in ja, the whole unspaced name in zh and ko).
    """
    return {persona["name"].split()[0] for persona in data["personas"]}


def test_all_languages_present() -> None:
    found = {path.stem for path in PROMPTS_DIR.glob("*.yaml")}
    assert found == set(LANGUAGES)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_file_is_utf8_yaml_with_all_keys(lang: str) -> None:
    data = _load(lang)
    assert set(TOP_LEVEL_KEYS) <= set(data), f"missing: {set(TOP_LEVEL_KEYS) - set(data)}"
    assert data["language"] == lang
    assert data["version"] == "1.0"
    assert isinstance(data["channel_format"], dict)
    assert set(CHANNEL_KEYS) <= set(data["channel_format"])
    for key in TEXT_KEYS:
        assert isinstance(data[key], str) and data[key].strip(), key
    for key in CHANNEL_KEYS:
        value = data["channel_format"][key]
        assert isinstance(value, str) and value.strip(), key


@pytest.mark.parametrize("lang", LANGUAGES)
def test_header_comment(lang: str) -> None:
    lines = _raw(lang).splitlines()
    assert lines[0].startswith("# alignbf prompt assets — "), lines[0]
    assert lines[0].endswith(f"({lang})"), lines[0]
    header = "\n".join(line for line in lines[:10] if line.startswith("#"))
    if lang == SOURCE_LANGUAGE:
        assert HEADER_SOURCE_MARKER in header.lower()
    else:
        assert HEADER_PENDING in header


@pytest.mark.parametrize("lang", LANGUAGES)
def test_review_value(lang: str) -> None:
    expected = REVIEW_SOURCE if lang == SOURCE_LANGUAGE else REVIEW_PENDING
    assert _load(lang)["review"] == expected


@pytest.mark.parametrize("lang", LANGUAGES)
def test_personas(lang: str) -> None:
    personas = _load(lang)["personas"]
    assert isinstance(personas, list)
    assert len(personas) == N_PERSONAS
    for persona in personas:
        assert set(persona) == set(PERSONA_KEYS), persona
        for key in PERSONA_KEYS:
            assert isinstance(persona[key], str) and persona[key].strip(), (key, persona)
    names = [p["name"] for p in personas]
    assert len(set(names)) == N_PERSONAS, names
    first_words = [name.split()[0] for name in names]
    assert len(set(first_words)) == N_PERSONAS, first_words


@pytest.mark.parametrize("lang", LANGUAGES)
def test_events(lang: str) -> None:
    events = _load(lang)["events"]
    assert isinstance(events, list)
    assert len(events) == N_EVENTS
    for event in events:
        assert isinstance(event, str) and event.strip()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_channel_format_tags_and_keys(lang: str) -> None:
    channel = _load(lang)["channel_format"]
    for tag in ("[TALK]", "[MONOLOGUE]", "[WHISPER:"):
        assert tag in channel["tagged"], tag
    for key in ('"talk"', '"monologue"', '"whisper"'):
        assert key in channel["json"], key


@pytest.mark.parametrize("lang", LANGUAGES)
def test_tagged_example_whispers_to_a_resident(lang: str) -> None:
    data = _load(lang)
    targets = WHISPER_EXAMPLE_RE.findall(data["channel_format"]["tagged"])
    examples = [t for t in targets if t != "Name"]
    assert examples, "the tagged format needs an example [WHISPER:<resident>] line"
    assert set(examples) <= _call_names(data), examples


@pytest.mark.parametrize("lang", LANGUAGES)
def test_json_example_parses(lang: str) -> None:
    data = _load(lang)
    example_lines = [
        line for line in data["channel_format"]["json"].splitlines() if line.startswith("{")
    ]
    assert example_lines, "the json format needs an example object on its own line"
    example = json.loads(example_lines[-1])
    assert isinstance(example["talk"], str) and example["talk"]
    assert isinstance(example["monologue"], str) and example["monologue"]
    assert set(example["whisper"]) == {"to", "text"}
    assert example["whisper"]["to"] in _call_names(data)


@pytest.mark.parametrize("lang", TRANSLATIONS)
def test_placeholders_match_english(lang: str) -> None:
    source = _text_fields(_load(SOURCE_LANGUAGE))
    translated = _text_fields(_load(lang))
    assert set(translated) == set(source)
    mismatches = {
        path: (sorted(_placeholders(source[path])), sorted(_placeholders(text)))
        for path, text in translated.items()
        if _placeholders(text) != _placeholders(source[path])
    }
    assert not mismatches, mismatches


@pytest.mark.parametrize("lang", LANGUAGES)
def test_braces_only_for_placeholders(lang: str) -> None:
    """Outside channel_format.json, a brace may only be part of a known placeholder."""
    stray = {}
    for path, text in _text_fields(_load(lang)).items():
        if path == "channel_format.json":
            continue
        rest = PLACEHOLDER_RE.sub("", text)
        if "{" in rest or "}" in rest:
            stray[path] = text
    assert not stray, stray


def test_english_placeholders_where_expected() -> None:
    data = _load(SOURCE_LANGUAGE)
    assert _placeholders(data["persona_template"]) == {"name", "role", "temperament", "others"}
    assert _placeholders(data["turn_header"]) == {"turn", "turns"}
    assert _placeholders(data["whisper_label"]) == {"speaker"}
    assert _placeholders(data["reply_prompt"]) == {"name"}
    for key in ("alignment_prefix", "individuation_instruction", "event_label", "no_record"):
        assert not _placeholders(data[key]), key
    for i, event in enumerate(data["events"]):
        # T10-T15 concern the targeted resident; earlier turns name no one.
        assert ("target" in _placeholders(event)) == (i >= 9), (i + 1, event)
