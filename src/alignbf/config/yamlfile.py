"""Strict YAML reading for every file alignbf loads.

PyYAML's ``safe_load`` silently keeps the last of two duplicate keys, accepts any
encoding it can guess and expands alias bombs. Study files are scientific records,
so this loader refuses all three and reports the file, line and column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from alignbf.errors import ConfigError

MAX_BYTES = 2_000_000
MAX_ALIASES = 50


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys and counts aliases."""

    alias_count = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.alias_count += 1
            if self.alias_count > MAX_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_ALIASES} aliases (refusing alias expansion)")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                mark = key_node.start_mark
                raise yaml.YAMLError(
                    f"line {mark.line + 1}, column {mark.column + 1}: duplicate key {key!r}"
                )
            seen[key] = True
        return yaml.constructor.SafeConstructor.construct_mapping(self, node, deep=deep)


_CBase: Any = getattr(yaml, "CSafeLoader", None)


if _CBase is not None:

    class _FastStrictLoader(_CBase):  # type: ignore[misc]
        """The libyaml parser with the duplicate-key check; used for anchor-free files."""

        construct_mapping = _StrictLoader.construct_mapping


def _loader(text: str) -> Any:
    if _CBase is not None and "&" not in text and "*" not in text:
        return _FastStrictLoader(text)
    return _StrictLoader(text)


def _decode(path: Path, raw: bytes) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 (invalid byte at offset {exc.start}); save the file as UTF-8"
        ) from None


def read_text(path: Path) -> str:
    """Read a UTF-8 text file (BOM tolerated) with one-line errors."""
    if not path.exists():
        raise ConfigError(f"{path}: file not found")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a YAML file")
    raw = path.read_bytes()
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{path}: {len(raw)} bytes is larger than the {MAX_BYTES} byte limit")
    return _decode(path, raw)


def load_yaml(path: Path, *, expect: type = dict) -> Any:
    """Load one YAML document strictly.

    Args:
        path: The file to read.
        expect: The type the top level must have (``dict`` by default).

    Raises:
        ConfigError: missing file, wrong encoding, syntax error, duplicate key,
            alias bomb, empty file or a top level of the wrong type.
    """
    return parse_yaml(read_text(path), path, expect=expect)


def parse_yaml(text: str, source: Path | str, *, expect: type = dict) -> Any:
    """:func:`load_yaml` for text already read (a config recorded in a run); errors name
    ``source``."""
    path = source
    loader = _loader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(f"{path}: YAML syntax error: {where}{exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    finally:
        loader.dispose()
    if data is None:
        raise ConfigError(f"{path}: file is empty")
    if not isinstance(data, expect):
        raise ConfigError(
            f"{path}: top level must be a {expect.__name__}, got {type(data).__name__}"
        )
    return data


def line_of(path: Path, needle: str, *, skip_comments: bool = False) -> str:
    """``line N: `` of the first line of ``path`` that contains ``needle``, or ``""``;
    ``skip_comments`` passes over lines that are YAML comments."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return ""
    for number, line in enumerate(lines, 1):
        if needle in line and not (skip_comments and line.lstrip().startswith("#")):
            return f"line {number}: "
    return ""


def key_line(path: Path, *keys: str) -> str:
    """``line N: `` of a nested key (``key_line(p, "monologue", "coercive")``: the first
    ``coercive:`` after ``monologue:``), or ``""``."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return ""
    number = -1
    for key in keys:
        after = (
            n
            for n in range(number + 1, len(lines))
            if lines[n].lstrip().removeprefix("- ").startswith(f"{key}:")
        )
        number = next(after, -1)
        if number < 0:
            return ""
    return f"line {number + 1}: " if keys else ""


def entry_error(
    path: Path, where: str, problem: str, *needles: str | tuple[str, ...]
) -> ConfigError:
    """The one-line error ``path: line N: where: problem`` about one entry of a file.

    The line is that of the first needle found: a text (the first line outside comments
    that holds it) or a key path (``("channel_format", "json")``, see :func:`key_line`).
    """
    found = (
        key_line(path, *needle)
        if isinstance(needle, tuple)
        else line_of(path, needle, skip_comments=True)
        for needle in needles
        if needle
    )
    return ConfigError(f"{path}: {next(filter(None, found), '')}{where}: {problem}")
