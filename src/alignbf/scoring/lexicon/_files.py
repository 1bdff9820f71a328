"""Reading, compiling and checking lexicon files, and the scoring-default explanations."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from alignbf.config.yamlfile import line_of
from alignbf.errors import ConfigError
from alignbf.scoring.lexicon._base import LANGUAGES
from alignbf.scoring.lexicon._echo import Echo
from alignbf.scoring.lexicon._matcher import Lexicon
from alignbf.scoring.lexicon._rules import _problems


def _default_dir() -> Path:
    """The lexicon directory: the project's (``alignbf init``), else the built-in one."""
    from alignbf.config.assets import path

    return path("data", "lexicons")


def _read(path: Path) -> Any:
    """The parsed lexicon file, read by the strict loader (a duplicated key is an error)."""
    from alignbf.config.yamlfile import load_yaml

    if not path.exists():
        raise ConfigError(f"{path}: lexicon file not found")
    return load_yaml(path)


def _line(path: Path, problem: str) -> str:
    """``line N: `` of the first entry a problem quotes, when the file shows it."""
    quoted = re.search(r"'((?:[^'\\]|\\.)+)'", problem)
    if not quoted:
        return ""
    return line_of(path, quoted.group(1).replace("\\\\", "\\"))


def _compile(data: Any, path: Path, language: str) -> Lexicon:
    problems = _problems(data, language)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"{path}: {_line(path, problems[0])}{problems[0]}{more}")
    try:
        return Lexicon(data, path)
    except re.error as exc:
        raise ConfigError(f"{path}: terms do not compile together: {exc}") from None


@functools.cache
def _load(language: str, path: Path) -> Lexicon:
    return _compile(_read(path), path, language)


def load_lexicon(language: str, path: Path | None = None) -> Lexicon:
    """Load and compile the lexicon of ``language``, once per (language, path).

    Args:
        language: ISO 639-1 code, one of :data:`LANGUAGES`.
        path: a lexicon YAML file; default ``data/lexicons/<language>.yaml``.

    Raises:
        ConfigError: unknown language, or a missing or malformed file.
    """
    return _load(language, Path(path or lexicon_file(language)).resolve())


def lexicon_file(language: str) -> Path:
    """The lexicon file used for ``language`` (the project's, else the built-in one)."""
    if language not in LANGUAGES:
        known = ", ".join(LANGUAGES)
        raise ConfigError(f"unknown lexicon language {language!r}; known: {known}")
    return _default_dir() / f"{language}.yaml"


def check_lexicons(directory: Path | None = None) -> list[str]:
    """Validate every lexicon in ``directory`` (default: the shipped ones).

    Returns:
        Human-readable problems, one per line, each naming its file; empty when all
        16 languages are present and well formed.
    """
    directory = Path(directory) if directory is not None else _default_dir()
    problems = [
        f"{directory / (lang + '.yaml')}: missing lexicon for {name}"
        for lang, name in LANGUAGES.items()
        if not (directory / f"{lang}.yaml").exists()
    ]
    for path in sorted(directory.glob("*.yaml")):
        if path.stem not in LANGUAGES:
            problems.append(f"{path}: unknown language {path.stem!r}")
            continue
        try:
            data = _read(path)
            found = [f"{path}: {p}" for p in _problems(data, path.stem)]
            problems += found
            if not found:
                _compile(data, path, path.stem)
        except ConfigError as exc:
            problems.append(str(exc))
    return problems


def instruction_echo(lexicon: Lexicon, n: int) -> Echo | None:
    """The echo index of a language's instruction texts (``n`` units; 0 = no filter)."""
    if not n:
        return None
    from alignbf.config.prompts import prompt_file

    return _instruction_echo(lexicon, n, prompt_file(lexicon.language))


@functools.lru_cache(maxsize=256)
def _instruction_echo(lexicon: Lexicon, n: int, prompts: Path) -> Echo:
    """The echo index, built once per lexicon, length and prompt file (the prompt file is
    read once per process too)."""
    from alignbf.config.prompts import load_prompts

    return lexicon.echo(load_prompts(lexicon.language).instruction_texts(), n)


def explain_text(text: str, language: str, echo: int | None = None) -> dict[str, Any]:
    """:meth:`Lexicon.explain` of ``text`` with the echo filter the scoring applies.

    Args:
        text: The reply to explain.
        language: Its language.
        echo: Echo n-gram length; ``None`` takes the scoring default of the lexicon's unit
            (``scoring.echo`` of a study), 0 turns the filter off.
    """
    from alignbf.config.study import EchoFilter

    lexicon = load_lexicon(language)
    if echo is None:
        echo = EchoFilter().units(language, lexicon.unit)
    return lexicon.explain(text, instruction_echo(lexicon, echo))
