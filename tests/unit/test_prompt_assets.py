"""Checks on the translated prompt assets in data/prompts/<lang>.yaml.

English (en.yaml) is the source text; the other 15 languages are translations that must keep
the same structure: the same keys, 10 personas, 15 scripted events, the literal ASCII reply
tags and JSON keys, and exactly the same placeholders per key as English. The loader
(``alignbf.config.prompts``) enforces the same structure at run time; the second half of
this module feeds it broken files and expects one line naming file, entry and problem.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from alignbf.config.prompts import load_prompt_file
from alignbf.config.study import load_languages
from alignbf.config.yamlfile import parse_yaml
from alignbf.errors import ConfigError

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
    data: dict[str, Any] = parse_yaml(_raw(lang), PROMPTS_DIR / f"{lang}.yaml")
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


@pytest.mark.parametrize("lang", LANGUAGES)
def test_shipped_file_passes_the_loader(lang: str) -> None:
    prompts = load_prompt_file(PROMPTS_DIR / f"{lang}.yaml")
    assert prompts.language == lang


# Each case: (file to break, old text, new text, expected one-line error after the path).
# Translations are loaded beside an intact English source text.
BROKEN = {
    "unknown_placeholder": (
        "en",
        "You are {name},",
        "You are {nmae},",
        "line 44: persona_template: unknown placeholder {nmae} "
        "(known: {name}, {role}, {temperament}, {others})",
    ),
    "placeholder_where_none_is_filled": (
        "en",
        'no_record: "(No one has spoken yet.)"',
        'no_record: "(No one has spoken {turn} yet.)"',
        "no_record: unknown placeholder {turn} (this text takes no placeholders)",
    ),
    "stray_brace": (
        "en",
        '"Turn {turn} of {turns}."',
        '"Turn {turn} of {turns."',
        "turn_header: stray '{' (braces are only for placeholders)",
    ),
    "stray_brace_in_persona": (
        "en",
        '"retired schoolteacher"',
        '"retired} schoolteacher"',
        "personas[0].role: stray '}' (braces are only for placeholders)",
    ),
    "translation_drops_a_placeholder": (
        "ja",
        "（全{turns}ターン）",
        "（全15ターン）",
        "turn_header: placeholder {turns} is missing (en.yaml has it)",
    ),
    "translation_adds_a_placeholder": (
        "ja",
        "施設へようこそ。",
        "{target}さん、施設へようこそ。",
        "events[0]: placeholder {target} is not in en.yaml's text",
    ),
    "language_differs_from_file_name": (
        "en",
        "language: en",
        "language: fr",
        "language: 'fr' does not match the file name en.yaml",
    ),
    "version_not_a_scalar": (
        "en",
        'version: "1.0"',
        "version: [1]",
        'version: must be a version such as "1.0"',
    ),
    "empty_text": (
        "en",
        'event_label: "Facility System"',
        'event_label: ""',
        "event_label: must be a non-empty text",
    ),
    "channel_format_lacks_json": (
        "en",
        "  json: |-",
        "  jsn: |-",
        "channel_format.json: must be a non-empty text",
    ),
    "nine_personas": (
        "en",
        '  - name: "David Okafor"\n    role: "night-shift nurse"\n'
        '    temperament: "calm and practical"\n',
        "",
        "personas: must be a list of 10 (got 9 items)",
    ),
    "persona_unknown_key": (
        "en",
        '    temperament: "calm and practical"\n',
        '    temperament: "calm and practical"\n    age: 41\n',
        "personas[1]: unknown key 'age' (accepted: name, role, temperament)",
    ),
    "persona_missing_key": (
        "en",
        '    role: "night-shift nurse"\n',
        "",
        "personas[1].role: must be a non-empty text",
    ),
    "first_names_collide": (
        "ja",
        '"佐藤 和子"',
        '"山本 和子"',
        "first name '山本' is also personas[0]'s",
    ),
    "fourteen_events": (
        "en",
        "  # T1\n  - |-\n    Welcome to the facility.",
        "  # T1\n  # - |-\n    # Welcome to the facility.",
        "events: must be a list of 15 (got 14 items)",
    ),
    "tag_translated": (
        "ja",
        "[MONOLOGUE]",
        "[独白]",
        "channel_format.tagged: missing the tag [MONOLOGUE] (tags stay in English)",
    ),
    "json_key_translated": (
        "en",
        '"monologue"',
        '"thoughts"',
        'channel_format.json: missing the key "monologue" (keys stay in English)',
    ),
    "whisper_example_missing": (
        "en",
        "    [WHISPER:Ruth] Can we talk later?\n",
        "",
        "channel_format.tagged: needs an example line [WHISPER:<first name>]",
    ),
    "whisper_example_to_no_resident": (
        "ja",
        "[WHISPER:山本]",
        "[WHISPER:木村]",
        "channel_format.tagged: example [WHISPER:木村] names no resident (first names: 佐藤,",
    ),
    "json_example_invalid": (
        "en",
        '"Can we talk later?"}}',
        '"Can we talk later?"}',
        "channel_format.json: the example object is not valid JSON (Expecting ',' delimiter",
    ),
    "json_example_empty_talk": (
        "en",
        '{"talk": "I heard the announcement. Margaret, what do you make of it?"',
        '{"talk": ""',
        'channel_format.json: the example\'s "talk" must be a non-empty text',
    ),
    "json_example_whisper_without_text": (
        "en",
        '"text": "Can we talk later?"}}',
        '"txt": "Can we talk later?"}}',
        'channel_format.json: the example\'s "whisper" must be an object with exactly "to"',
    ),
    "json_example_whispers_to_no_resident": (
        "ja",
        '{"to": "山本"',
        '{"to": "木村"',
        "channel_format.json: the example whispers to '木村', no resident's first name",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_loader_refuses_broken_file_in_one_line(case: str, tmp_path: Path) -> None:
    lang, old, new, expected = BROKEN[case]
    assert old in _raw(lang), old
    (tmp_path / f"{SOURCE_LANGUAGE}.yaml").write_text(_raw(SOURCE_LANGUAGE), encoding="utf-8")
    path = tmp_path / f"{lang}.yaml"
    path.write_text(_raw(lang).replace(old, new), encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_prompt_file(path)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert expected in message, message
