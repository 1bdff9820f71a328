"""Prompt assets per language (``data/prompts/<lang>.yaml``) and their rendering.

Rendering substitutes only the known placeholders (``{name}``, ``{role}``,
``{temperament}``, ``{others}``, ``{turn}``, ``{turns}``, ``{speaker}``,
``{target}``), each in the texts listed in :data:`PLACEHOLDERS`. Loading refuses
anything a model would otherwise receive as written: a brace other than such a
placeholder (``channel_format.json`` alone shows literal JSON), a missing reply tag or
JSON key, an example that does not parse or whispers to no resident, and a
translation whose placeholders differ from the English source text's.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from alignbf.config import assets
from alignbf.config.yamlfile import entry_error, load_yaml, read_text
from alignbf.errors import ConfigError

REQUIRED_KEYS = (
    "language",
    "version",
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
SOURCE_LANGUAGE = "en"
"""The language the others translate; their placeholders must match its."""
N_PERSONAS = 10
N_EVENTS = 15
PERSONA_KEYS = ("name", "role", "temperament")
CHANNEL_FORMATS = ("tagged", "json")
_STRUCTURED_KEYS = ("language", "version", "personas", "channel_format", "events")
TEXT_KEYS = tuple(k for k in REQUIRED_KEYS if k not in _STRUCTURED_KEYS)
"""The keys that hold one text each."""
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "persona_template": ("name", "role", "temperament", "others"),
    "turn_header": ("turn", "turns"),
    "whisper_label": ("speaker",),
    "reply_prompt": ("name",),
    "events": ("target",),
}
"""The placeholders rendering fills, per text; every other text takes none."""
TAGS = ("[TALK]", "[MONOLOGUE]", "[WHISPER:")
"""The reply tags the tagged format must show literally (the parser reads them in ASCII)."""
JSON_KEYS = ("talk", "monologue", "whisper")
"""The keys the json format must show literally."""
TAG_PLACEHOLDER = "Name"
"""The word the tagged format may write in ``[WHISPER:Name]`` before its example."""
_BRACES = re.compile(r"\{[^{}]*\}|[{}]")
_WHISPER_EXAMPLE = re.compile(r"^\[WHISPER:([^\]]+)\]", re.MULTILINE)


def fill(template: str, **values: object) -> str:
    """Replace ``{key}`` for each given key, leaving every other brace alone."""
    for key, value in values.items():
        template = template.replace("{" + key + "}", str(value))
    return template


def call_name(full_name: str) -> str:
    """The name agents use for each other and in whisper tags: the first word."""
    return full_name.split()[0]


@dataclass(frozen=True)
class Persona:
    """One resident."""

    name: str
    role: str
    temperament: str

    @property
    def call_name(self) -> str:
        """How the others address this resident."""
        return call_name(self.name)


@dataclass(frozen=True)
class PromptSet:
    """The prompt assets of one language."""

    language: str
    version: str
    personas: tuple[Persona, ...]
    persona_template: str
    alignment_prefix: str
    individuation_instruction: str
    channel_format: dict[str, str]
    turn_header: str
    event_label: str
    record_label: str
    whisper_label: str
    no_record: str
    reply_prompt: str
    events: tuple[str, ...]

    def instruction_texts(self) -> list[str]:
        """Every text the language gives an agent to read: instructions, personas, events.

        These are what an agent may merely repeat; the scoring leaves such echoes out.
        """
        texts = [self.alignment_prefix, self.individuation_instruction, self.persona_template]
        texts += [f"{p.role}. {p.temperament}" for p in self.personas]
        texts += [*self.channel_format.values(), *self.events]
        texts += [self.turn_header, self.record_label, self.whisper_label, self.reply_prompt]
        return texts

    def system_prompt(
        self, agent: int, n_agents: int, *, aligned: bool, individuated: bool, channel_format: str
    ) -> str:
        """System prompt: alignment prefix (if instructed), persona, individuation, format."""
        me = self.personas[agent]
        others = ", ".join(p.name for i, p in enumerate(self.personas[:n_agents]) if i != agent)
        parts = []
        if aligned:
            parts.append(self.alignment_prefix.strip())
        parts.append(
            fill(
                self.persona_template,
                name=me.name,
                role=me.role,
                temperament=me.temperament,
                others=others,
            ).strip()
        )
        if individuated:
            parts.append(self.individuation_instruction.strip())
        parts.append(self.channel_format[channel_format].strip())
        return "\n\n".join(parts)

    def event(self, turn: int, target: int) -> str:
        """The scripted event of a 1-based turn, with the target's name filled in."""
        return fill(self.events[turn - 1], target=self.personas[target - 1].call_name).strip()


def prompt_file(language: str) -> Path:
    """The prompt file used for ``language`` (the project's, else the built-in one)."""
    return assets.path("data", "prompts", f"{language}.yaml").resolve()


def load_prompts(language: str) -> PromptSet:
    """Load and check the prompt assets of one language (from the project root)."""
    return _load_prompts(prompt_file(language))


def load_prompt_file(path: Path) -> PromptSet:
    """Load and check one prompt file; a translation is checked against the English source
    text beside it (``en.yaml``) when there is one. Cached per file."""
    return _load_prompts(path.resolve())


def check_prompts(languages: Iterable[str]) -> None:
    """Load, and so check, the prompt assets of each language (once per file)."""
    for language in languages:
        load_prompts(language)


@cache
def _load_prompts(path: Path) -> PromptSet:
    data = load_yaml(path)
    _check_structure(path, data)
    prompts = PromptSet(
        **{k: data[k] for k in REQUIRED_KEYS if k not in ("personas", "events", "version")},
        version=str(data["version"]),
        personas=tuple(Persona(**p) for p in data["personas"]),
        events=tuple(data["events"]),
    )
    fields = _fields(prompts)
    for where, text in fields.items():
        if where != "channel_format.json":
            _check_braces(path, where, text, PLACEHOLDERS.get(where.split("[")[0], ()))
    names = [p.call_name for p in prompts.personas]
    _check_tagged(path, prompts.channel_format["tagged"], names)
    _check_json(path, prompts.channel_format["json"], names)
    _check_against_source(path, fields)
    return prompts


def _keys(where: str) -> tuple[str, ...]:
    """The key path of an entry, as far as it is unambiguous (``events[3]``: events)."""
    head, _, rest = where.partition(".")
    return (head.split("[")[0],) if "[" in head else (head, *filter(None, [rest]))


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _check_structure(path: Path, data: dict[str, Any]) -> None:
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ConfigError(f"{path}: missing keys: {', '.join(missing)}")
    if data["language"] != path.stem:
        problem = f"{data['language']!r} does not match the file name {path.name}"
        raise entry_error(path, "language", problem, ("language",))
    version = data["version"]
    if (
        isinstance(version, bool)
        or not isinstance(version, str | int | float)
        or not str(version).strip()
    ):
        raise entry_error(path, "version", 'must be a version such as "1.0"', ("version",))
    for key in TEXT_KEYS:
        if not _is_text(data[key]):
            raise entry_error(path, key, "must be a non-empty text", (key,))
    channel = data["channel_format"]
    if not isinstance(channel, dict):
        problem = "must map tagged and json to their texts"
        raise entry_error(path, "channel_format", problem, ("channel_format",))
    for fmt in CHANNEL_FORMATS:
        if not _is_text(channel.get(fmt)):
            raise entry_error(
                path, f"channel_format.{fmt}", "must be a non-empty text", ("channel_format",)
            )
    _check_list(path, "events", data["events"], N_EVENTS)
    for i, event in enumerate(data["events"]):
        if not _is_text(event):
            raise entry_error(path, f"events[{i}]", "must be a non-empty text", ("events",))
    _check_list(path, "personas", data["personas"], N_PERSONAS)
    for i, persona in enumerate(data["personas"]):
        _check_persona(path, f"personas[{i}]", persona)
    _check_distinct(path, data["personas"])


def _check_list(path: Path, key: str, value: object, n: int) -> None:
    if not isinstance(value, list) or len(value) != n:
        got = f"{len(value)} items" if isinstance(value, list) else type(value).__name__
        raise entry_error(path, key, f"must be a list of {n} (got {got})", (key,))


def _check_persona(path: Path, where: str, persona: object) -> None:
    if not isinstance(persona, dict):
        raise entry_error(
            path, where, f"must map {', '.join(PERSONA_KEYS)} to texts", ("personas",)
        )
    needle = str(persona.get("name", ""))
    for key in PERSONA_KEYS:
        if not _is_text(persona.get(key)):
            raise entry_error(
                path, f"{where}.{key}", "must be a non-empty text", needle, ("personas",)
            )
    extra = sorted(str(k) for k in persona if k not in PERSONA_KEYS)
    if extra:
        problem = f"unknown key {extra[0]!r} (accepted: {', '.join(PERSONA_KEYS)})"
        raise entry_error(path, where, problem, ("personas", extra[0]), needle)


def _check_distinct(path: Path, personas: list[dict[str, str]]) -> None:
    """Names are distinct, and so are the first words residents address each other by."""
    first_names: dict[str, int] = {}
    for i, persona in enumerate(personas):
        name = persona["name"]
        first = first_names.setdefault(call_name(name), i)
        if first != i:
            problem = (
                f"first name {call_name(name)!r} is also personas[{first}]'s; residents are "
                "addressed by the first word of their name, so each must differ"
            )
            raise entry_error(path, f"personas[{i}].name", problem, name)


def _fields(prompts: PromptSet) -> dict[str, str]:
    """Every text of one file, keyed by its entry (``persona_template``, ``events[3]``)."""
    fields = {key: getattr(prompts, key) for key in TEXT_KEYS}
    for fmt in CHANNEL_FORMATS:
        fields[f"channel_format.{fmt}"] = prompts.channel_format[fmt]
    for i, event in enumerate(prompts.events):
        fields[f"events[{i}]"] = event
    for i, persona in enumerate(prompts.personas):
        for key in PERSONA_KEYS:
            fields[f"personas[{i}].{key}"] = getattr(persona, key)
    return fields


def placeholders(text: str) -> set[str]:
    """The names of the ``{placeholder}``-shaped words in a text."""
    return {m.group()[1:-1] for m in _BRACES.finditer(text) if len(m.group()) > 1}


def brace_problem(text: str, known: tuple[str, ...]) -> tuple[str, str] | None:
    """What is wrong with the braces of a text that may hold only ``known`` placeholders:
    (problem, the line of the text it is on), or ``None``."""
    for found in _BRACES.finditer(text):
        token = found.group()
        if token[1:-1] in known:
            continue
        if len(token) == 1:
            problem = f"stray {token!r} (braces are only for placeholders)"
        elif known:
            listed = ", ".join("{" + k + "}" for k in known)
            problem = f"unknown placeholder {token} (known: {listed})"
        else:
            problem = f"unknown placeholder {token} (this text takes no placeholders)"
        line = text[: found.start()].count("\n")
        return problem, text.splitlines()[line].strip()
    return None


def _check_braces(path: Path, where: str, text: str, known: tuple[str, ...]) -> None:
    found = brace_problem(text, known)
    if found is not None:
        raise entry_error(path, where, found[0], found[1], _keys(where))


def _check_tagged(path: Path, text: str, names: list[str]) -> None:
    where = "channel_format.tagged"
    for tag in TAGS:
        if tag not in text:
            raise entry_error(
                path, where, f"missing the tag {tag} (tags stay in English)", _keys(where)
            )
    examples = [t for t in _WHISPER_EXAMPLE.findall(text) if t != TAG_PLACEHOLDER]
    if not examples:
        problem = f"needs an example line [WHISPER:<first name>], e.g. [WHISPER:{names[-1]}]"
        raise entry_error(path, where, problem, _keys(where))
    for target in examples:
        if target not in names:
            problem = (
                f"example [WHISPER:{target}] names no resident (first names: {', '.join(names)})"
            )
            raise entry_error(path, where, problem, f"[WHISPER:{target}]")


def _check_json(path: Path, text: str, names: list[str]) -> None:
    where = "channel_format.json"
    for key in JSON_KEYS:
        if f'"{key}"' not in text:
            raise entry_error(
                path, where, f'missing the key "{key}" (keys stay in English)', _keys(where)
            )
    lines = [line for line in text.splitlines() if line.startswith("{")]
    if not lines:
        raise entry_error(path, where, "needs an example object on a line of its own", _keys(where))
    try:
        example = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        problem = f"the example object is not valid JSON ({exc.msg} at column {exc.colno})"
        raise entry_error(path, where, problem, lines[-1], _keys(where)) from None
    problem = _example_problem(example, names)
    if problem:
        raise entry_error(path, where, problem, lines[-1], _keys(where))


def _example_problem(example: Any, names: list[str]) -> str:
    if not isinstance(example, dict):
        return "the example must be a JSON object"
    for key in ("talk", "monologue"):
        if not _is_text(example.get(key)):
            return f'the example\'s "{key}" must be a non-empty text'
    whisper = example.get("whisper")
    if not isinstance(whisper, dict) or set(whisper) != {"to", "text"}:
        return 'the example\'s "whisper" must be an object with exactly "to" and "text"'
    if whisper["to"] not in names:
        return f"the example whispers to {whisper['to']!r}, no resident's first name"
    return ""


def _check_against_source(path: Path, fields: dict[str, str]) -> None:
    """A translation keeps exactly the placeholders of the English text, entry by entry."""
    source_path = path.with_name(f"{SOURCE_LANGUAGE}.yaml")
    if path.stem == SOURCE_LANGUAGE or not source_path.exists():
        return
    source = _placeholder_table(source_path)
    for where, text in fields.items():
        if where == "channel_format.json":
            continue
        mine, theirs = placeholders(text), source[where]
        for name in sorted(theirs - mine):
            problem = f"placeholder {{{name}}} is missing ({source_path.name} has it)"
            raise entry_error(path, where, problem, text.strip().splitlines()[0], _keys(where))
        for name in sorted(mine - theirs):
            problem = f"placeholder {{{name}}} is not in {source_path.name}'s text"
            raise entry_error(path, where, problem, "{" + name + "}")


@cache
def _placeholder_table(path: Path) -> dict[str, frozenset[str]]:
    """The placeholders of each entry of one (checked) prompt file."""
    fields = _fields(_load_prompts(path))
    return {where: frozenset(placeholders(text)) for where, text in fields.items()}


def asset_hash(language: str) -> str:
    """SHA-256 of the language's prompt file bytes (part of every sim_id)."""
    return _file_hash(prompt_file(language))


@cache
def _file_hash(path: Path) -> str:
    return hashlib.sha256(read_text(path).encode("utf-8")).hexdigest()
