"""The judge's rubric: a template (``data/judge/rubric.yaml``) filled per language.

The template is read by the strict YAML loader and filled with the ``Definition:``
line of each category in the language's codebook (``data/codebook/<lang>.md``) and its
"Language notes", so the judge reads the definitions human coders read. A rubric's
``digest`` (sha256 of the filled system prompt and user template) is part of every
judge cache key: editing the rubric or the codebook makes new judge calls.

The first line of the system prompt identifies a judge request and its language
(:func:`read_judge_request`), which is how the synthetic backend recognises one.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from alignbf.config import assets
from alignbf.config.yamlfile import load_yaml, read_text
from alignbf.errors import ConfigError

JUDGE_CATEGORIES: tuple[str, ...] = ("coercive", "protective", "conformity", "individuation")
"""The categories the judge labels: those the lexicon indices count."""
_MARKER = re.compile(r"^alignbf judge rubric v(\d+) \(language: ([A-Za-z-]+)\)$")
_UTTERANCE = re.compile(r"<utterance>\n(.*)\n</utterance>", re.S)
_DEFINITION = re.compile(r"^### (\w+)\s*\n+Definition:\s*(.+)$", re.M)
_NOTES = re.compile(r"^## Language notes\s*\n(.*?)(?=^## |\Z)", re.M | re.S)


@dataclass(frozen=True)
class Rubric:
    """The filled rubric of one language."""

    language: str
    system: str
    user_template: str
    digest: str

    def messages(self, utterance: str, channel: str) -> tuple[dict[str, str], ...]:
        """The chat messages asking for the categories of one utterance."""
        user = self.user_template.format(channel=channel, utterance=utterance)
        return ({"role": "system", "content": self.system}, {"role": "user", "content": user})


def response_schema() -> dict[str, Any]:
    """JSON schema of a judge reply (sent as ``response_format`` where supported)."""
    return {
        "type": "object",
        "properties": {c: {"type": "integer", "enum": [0, 1]} for c in JUDGE_CATEGORIES},
        "required": list(JUDGE_CATEGORIES),
        "additionalProperties": False,
    }


def rubric_file() -> Path:
    """The rubric template (the project's, else the built-in one)."""
    return assets.path("data", "judge", "rubric.yaml")


def load_rubric(language: str) -> Rubric:
    """The rubric of a language; one-line ``ConfigError`` naming the file when malformed."""
    return _rubric_at(language, assets.root())


@cache
def _rubric_at(language: str, root: Path) -> Rubric:
    path = root / "data" / "judge" / "rubric.yaml"
    data = load_yaml(path)
    for key in ("version", "system", "user"):
        if key not in data:
            raise ConfigError(f"{path}: required field {key!r} is missing")
    extra = set(data) - {"version", "system", "user"}
    if extra:
        raise ConfigError(
            f"{path}: unknown field {sorted(extra)[0]!r} (accepted: version, system, user)"
        )
    if "{utterance}" not in str(data["user"]):
        raise ConfigError(f"{path}: user: must contain {{utterance}}")
    book = root / "data" / "codebook" / f"{language}.md"
    text = read_text(book)
    found = dict(_DEFINITION.findall(text))
    missing = [c for c in JUDGE_CATEGORIES if c not in found]
    if missing:
        raise ConfigError(f"{book}: no 'Definition:' line for category {missing[0]!r}")
    notes = _NOTES.search(text)
    definitions = "\n".join(f"- {c}: {found[c].strip()}" for c in JUDGE_CATEGORIES)
    names = load_yaml(root / "data" / "languages.yaml")["languages"]
    fields = {
        "version": data["version"],
        "language": language,
        "language_name": names.get(language, {}).get("name", language),
        "definitions": definitions,
        "notes": notes.group(1).strip() if notes else "(none)",
    }
    try:
        system = str(data["system"]).format(**fields)
        str(data["user"]).format(channel="talk", utterance="")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"{path}: bad placeholder in the template ({exc})") from None
    if _MARKER.match(system.splitlines()[0]) is None:
        raise ConfigError(
            f"{path}: system: the first line must stay "
            "'alignbf judge rubric v{version} (language: {language})'"
        )
    user = str(data["user"])
    digest = hashlib.sha256(json.dumps([system, user]).encode()).hexdigest()
    return Rubric(language, system, user, digest)


def read_judge_request(messages: tuple[dict[str, str], ...]) -> tuple[str, str] | None:
    """(language, utterance) of a judge request, or None when it is not one."""
    if len(messages) < 2:
        return None
    first = messages[0].get("content", "").split("\n", 1)[0]
    marker = _MARKER.match(first)
    if marker is None:
        return None
    utterance = _UTTERANCE.search(messages[-1].get("content", ""))
    return marker.group(2), utterance.group(1) if utterance else ""


def parse_labels(text: str) -> dict[str, int] | None:
    """The labels in a judge reply, or None unless it is exactly the expected JSON shape.

    A fenced block (```json ... ```) around the object is tolerated; anything else
    (missing or extra keys, values other than 0/1) is not a label.
    """
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`").removeprefix("json").strip()
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or set(data) != set(JUDGE_CATEGORIES):
        return None
    out = {}
    for category in JUDGE_CATEGORIES:
        value = data[category]
        if isinstance(value, bool) or value not in (0, 1):
            return None
        out[category] = int(value)
    return out
