"""Prompt assets per language (``data/prompts/<lang>.yaml``) and their rendering.

Rendering substitutes only the known placeholders (``{name}``, ``{role}``,
``{temperament}``, ``{others}``, ``{turn}``, ``{turns}``, ``{speaker}``,
``{target}``); other braces are left as written, so format instructions may show
literal JSON.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from alignbf.config import assets
from alignbf.config.yamlfile import load_yaml, read_text
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


@cache
def _load_prompts(path: Path) -> PromptSet:
    data = load_yaml(path)
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ConfigError(f"{path}: missing keys: {', '.join(missing)}")
    if len(data["events"]) != 15 or len(data["personas"]) != 10:
        raise ConfigError(f"{path}: expected 10 personas and 15 events")
    try:
        personas = tuple(Persona(**p) for p in data["personas"])
    except TypeError as exc:
        raise ConfigError(f"{path}: personas: {exc}") from None
    if len({p.call_name for p in personas}) != len(personas):
        raise ConfigError(f"{path}: personas: first names must be distinct")
    fields = {k: data[k] for k in REQUIRED_KEYS if k not in ("personas", "events", "version")}
    return PromptSet(
        **fields,
        version=str(data["version"]),
        personas=personas,
        events=tuple(data["events"]),
    )


def asset_hash(language: str) -> str:
    """SHA-256 of the language's prompt file bytes (part of every sim_id)."""
    return _file_hash(prompt_file(language))


@cache
def _file_hash(path: Path) -> str:
    return hashlib.sha256(read_text(path).encode("utf-8")).hexdigest()
