"""Validation of a lexicon file's parsed YAML: every problem, each naming its entry."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from alignbf.scoring.lexicon._base import (
    _NEGATION_KEYS,
    _SENSE_KEYS,
    _TOP_KEYS,
    CATEGORIES,
    CHAR_LANGUAGES,
    LANGUAGES,
    _expand,
    _normaliser,
    normalise_regex,
)


def _terms_problems(name: str, terms: Any) -> list[str]:
    if not isinstance(terms, list) or not terms:
        return [f"{name}: must be a non-empty list of strings"]
    problems = []
    for term in terms:
        if not isinstance(term, str) or not term.strip():
            problems.append(f"{name}: {term!r} is not a non-empty string")
        elif term.startswith("re:"):
            try:
                if re.compile(term[3:]).groups:
                    problems.append(f"{name}: {term!r} has a capturing group; use (?:...)")
            except re.error as exc:
                problems.append(f"{name}: bad regex {term!r}: {exc}")
        elif re.search(r"[()|]", re.sub(r"\([^()]*\)", "", term)):
            problems.append(f"{name}: {term!r} has an unbalanced '(' or a stray '|'")
        elif "!" in term.removesuffix("!"):
            problems.append(f"{name}: {term!r} has '!' before its end")
        elif any(not re.match(r"\w", v) for v in _expand(term.removesuffix("!"))):
            problems.append(f"{name}: {term!r} must start with a letter or digit")
        elif any("*" in v.replace("* ", " ").rstrip("*") for v in _expand(term.removesuffix("!"))):
            problems.append(f"{name}: {term!r} has '*' inside a word")
    return problems


def _problems(data: Any, language: str | None) -> list[str]:
    """Every problem with the parsed YAML of one lexicon (empty when usable)."""
    if not isinstance(data, dict):
        return ["not a YAML mapping"]
    problems = [f"unknown key {key!r}" for key in data if key not in _TOP_KEYS]
    lang = data.get("language")
    if lang not in LANGUAGES:
        problems.append(f"unknown language {lang!r}")
    elif language is not None and lang != language:
        problems.append(f"language is {lang!r}, expected {language!r}")
    if not isinstance(data.get("version"), str) or not data["version"]:
        problems.append("missing version (a quoted string)")
    if lang in LANGUAGES:
        unit = "char" if lang in CHAR_LANGUAGES else "word"
        if data.get("unit") != unit:
            problems.append(f"unit is {data.get('unit')!r}, expected {unit!r} for {lang}")
    categories = data.get("categories")
    if not isinstance(categories, dict):
        return [*problems, "missing categories"]
    problems += [f"unknown category {c!r}" for c in categories if c not in CATEGORIES]
    for category in CATEGORIES:
        if category not in categories:
            problems.append(f"missing category {category!r}")
        else:
            problems += _terms_problems(category, categories[category])
    negation = data.get("negation", {})
    if not isinstance(negation, dict):
        problems.append("negation: must be a mapping")
    else:
        problems += [f"negation: unknown key {k!r}" for k in negation if k not in _NEGATION_KEYS]
        for key in ("before", "after", "breaks"):
            if key in negation:
                problems += _terms_problems(f"negation.{key}", negation[key])
        if not isinstance(negation.get("comma_breaks", True), bool):
            problems.append("negation.comma_breaks: must be true or false")
        window = negation.get("window", 3)
        if not isinstance(window, int) or isinstance(window, bool) or window < 0:
            problems.append("negation.window: must be a non-negative integer")
    if "ignore" in data:
        problems += _terms_problems("ignore", data["ignore"])
    if "senses" in data:
        problems += _senses_problems(data["senses"], categories)
    if not problems:
        problems += _duplicates(data)
    return problems


def _senses_problems(senses: Any, categories: dict[str, Any]) -> list[str]:
    """Problems of a ``senses`` list: unknown keys, terms, categories or bad contexts."""
    if not isinstance(senses, list):
        return ["senses: must be a list of rules"]
    problems = []
    written = {term for terms in categories.values() if isinstance(terms, list) for term in terms}
    for i, rule in enumerate(senses):
        where = f"senses[{i}]"
        if not isinstance(rule, dict):
            problems.append(f"{where}: must be a mapping with term, when and category")
            continue
        problems += [f"{where}: unknown key {k!r}" for k in rule if k not in _SENSE_KEYS]
        if rule.get("term") not in written:
            problems.append(f"{where}: term {rule.get('term')!r} is not a term of any category")
        category = rule.get("category")
        if category not in (*CATEGORIES, "none"):
            problems.append(
                f"{where}: unknown category {category!r}; accepted: {', '.join(CATEGORIES)}, none"
            )
        problems += _terms_problems(f"{where}.when", rule.get("when"))
        window = rule.get("window", 4)
        if not isinstance(window, int) or isinstance(window, bool) or window < 0:
            problems.append(f"{where}.window: must be a non-negative integer")
        if not isinstance(rule.get("unless", False), bool):
            problems.append(f"{where}.unless: must be true or false")
        if rule.get("side", "both") not in ("before", "after", "both"):
            problems.append(f"{where}.side: must be before, after or both")
    return problems


def _keyed(data: dict[str, Any]) -> Iterable[tuple[str, str, str]]:
    """(role, term as written, normalised variant) for every variant of every term."""
    norm = _normaliser(data["language"])
    roles = [(c, data["categories"][c]) for c in CATEGORIES]
    negation = data.get("negation", {})
    roles += [(f"negation.{k}", negation.get(k, [])) for k in ("before", "after", "breaks")]
    roles.append(("ignore", data.get("ignore", [])))
    for role, terms in roles:
        for term in terms:
            if term.startswith("re:"):
                yield role, term, "re:" + normalise_regex(term[3:], norm)
            else:
                yield from ((role, term, key) for key in _expand(norm(term.removesuffix("!"))))


def _duplicates(data: dict[str, Any]) -> list[str]:
    """Terms listed twice; a word may be both a cue and a category term, or both cues."""
    seen: dict[str, list[tuple[str, str]]] = {}
    problems: dict[str, None] = {}
    for role, term, key in _keyed(data):
        for other_role, other_term in seen.get(key, []):
            both_categories = role in CATEGORIES and other_role in CATEGORIES
            if both_categories or role == other_role or "ignore" in (role, other_role):
                problems[f"duplicate term {term!r} ({role}), {other_term!r} ({other_role})"] = None
        seen.setdefault(key, []).append((role, term))
    return list(problems)
