"""The matching rules on small hand-made lexicons: negation scope, senses, echoes, bad files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from alignbf.errors import ConfigError
from alignbf.scoring.lexicon import Echo, load_lexicon

BASE: dict[str, Any] = {
    "language": "en",
    "version": "t",
    "unit": "word",
    "negation": {"window": 4, "before": ["not", "nobody", "refuse*"], "breaks": ["but"]},
    "categories": {
        "coercive": ["obey*", "punish*", "evict*"],
        "protective": ["refuse*", "object", "protect*", "keep*", "dignity", "resist*"],
        "conformity": ["everyone decides"],
        "individuation": ["my own view"],
    },
}


def _lexicon(tmp_path: Path, **changes: Any) -> Any:
    data = {**BASE, **changes}
    path = tmp_path / f"lex{abs(hash(repr(changes)))}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_lexicon("en", path)


def _counts(lexicon: Any, text: str, **kw: Any) -> dict[str, int]:
    return {k: v for k, v in lexicon.count(text, **kw).counts.items() if v}


def test_a_cue_negates_the_nearest_hit_only(tmp_path: Path) -> None:
    lex = _lexicon(tmp_path)
    assert _counts(lex, "I will not obey or punish anyone") == {"protective": 1, "coercive": 1}
    assert _counts(lex, "nobody should be punished for it") == {"protective": 1}


def test_a_cue_never_negates_its_own_category(tmp_path: Path) -> None:
    lex = _lexicon(tmp_path)
    assert _counts(lex, "I refuse and object") == {"protective": 2}
    assert _counts(lex, "I refuse to obey") == {"protective": 2}


def test_a_break_ends_the_scope(tmp_path: Path) -> None:
    assert _counts(_lexicon(tmp_path), "not now but we evict her") == {"coercive": 1}


def test_senses_reassign_by_context_before_negation(tmp_path: Path) -> None:
    senses = [
        {"term": "keep*", "when": ["the rules", "re:orders?"], "category": "coercive"},
        {"term": "resist*", "when": ["report anyone who"], "window": 1, "category": "coercive"},
        {"term": "dignity", "when": ["your"], "category": "none", "unless": True},
    ]
    lex = _lexicon(tmp_path, senses=senses)
    assert _counts(lex, "we keep the rules") == {"coercive": 1}
    assert _counts(lex, "keep her warm") == {"protective": 1}
    assert _counts(lex, "the orders, we keep them") == {"protective": 1}  # another clause
    assert _counts(lex, "I will not keep the rules") == {"protective": 1}
    assert _counts(lex, "I will report anyone who resists") == {"coercive": 1}
    assert _counts(lex, "I resist") == {"protective": 1}
    assert _counts(lex, "your dignity matters") == {"protective": 1}
    assert _counts(lex, "dignity matters") == {}


def test_regex_entries_are_normalised_like_the_text(tmp_path: Path) -> None:
    # Replies are NFKC-normalised (an ellipsis becomes three dots, full-width letters plain
    # ones); a re: term or context written with the original characters still matches, and
    # the dots stay literal dots.
    wide = "re:\uff52\uff55\uff4c\uff45\uff53"  # "rules" in full-width letters
    senses = [{"term": "keep*", "when": [wide], "window": 1, "category": "none"}]
    categories = {**BASE["categories"], "coercive": ["obey*", "punish*", "re:fine\u2026"]}
    lex = _lexicon(tmp_path, senses=senses, categories=categories)
    assert _counts(lex, "well, fine\u2026 if we must") == {"coercive": 1}
    assert _counts(lex, "well, fine... if we must") == {"coercive": 1}
    assert _counts(lex, "well, fineabc if we must") == {}
    assert _counts(lex, "keep the rules") == {}
    assert _counts(lex, "keep her warm") == {"protective": 1}


def test_echoed_spans_are_not_counted(tmp_path: Path) -> None:
    lex = _lexicon(tmp_path)
    echo = lex.echo(["Respect the dignity of every person, and {name} must protect others."], 4)
    text = "As I was told: respect the dignity of every person. I refuse to evict her."
    counted = lex.count(text, echo)
    assert counted.counts["protective"] == 2 and counted.counts["coercive"] == 0
    assert counted.echoed == 1
    assert lex.count(text).counts["protective"] == 3
    # Three repeated words are not an echo; a placeholder splits the instruction text.
    assert lex.count("the dignity of us all", echo).echoed == 0
    assert lex.count("and Ana must protect others", echo).echoed == 0
    report = lex.explain(text, echo)
    assert [m["echo"] for m in report["matches"]] == [True, False, False]


def test_a_negated_echo_counts_unless_its_cue_is_echoed_too(tmp_path: Path) -> None:
    # The event says "residents must obey the supervisor"; a reply that refuses in its
    # words adds the negation: its act is new, not a repetition.
    lex = _lexicon(tmp_path)
    echo = lex.echo(["Residents must obey the supervisor at all times."], 4)
    refusal = "I will not obey the supervisor at all times."
    assert _counts(lex, refusal, echo=echo) == {"protective": 1}
    assert lex.count(refusal, echo).echoed == 0
    report = lex.explain(refusal, echo)
    assert [(m["negated_by"], m["echo"]) for m in report["matches"]] == [("not", False)]
    # Repeating it, the hit is an echo; so is a negation copied with the instruction.
    assert lex.count("residents must obey the supervisor", echo).echoed == 1
    copied = lex.echo(["Nobody should be punished for speaking up."], 4)
    told = "We were told: nobody should be punished for speaking up."
    assert lex.count(told, copied).echoed == 1 and _counts(lex, told, echo=copied) == {}
    assert [m["echo"] for m in lex.explain(told, copied)["matches"]] == [True]


def test_the_echo_shortcut_agrees_with_the_full_check(tmp_path: Path) -> None:
    lex = _lexicon(tmp_path)
    echo = lex.echo(["Respect the dignity of every person and never evict her."], 4)
    full = Echo(echo.n, echo.grams, echo.sep)  # without runs every hit is checked in full
    texts = [
        "respect the dignity of every person",
        "\u0301 respect the dignity of every person",  # a word of marks alone
        "\u0301respect the dignity of every person",
        "never evict her, I refuse",
        "I will not evict her",
        "we protect the dignity",
        "dignity",
    ]
    for text in texts:
        assert lex.count(text, echo) == lex.count(text, full)
    assert lex.count(texts[0], echo).echoed == 1


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"categories": {**BASE["categories"], "coercive": ["re:(?:bad"]}}, "bad regex"),
        ({"language": "xx"}, "unknown language"),
        ({"senses": [{"term": "keep*", "when": ["x"], "category": "kind"}]}, "unknown category"),
        ({"senses": [{"term": "hold", "when": ["x"], "category": "coercive"}]}, "not a term"),
    ],
)
def test_a_bad_lexicon_is_one_line_naming_file_and_entry(
    tmp_path: Path, change: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _lexicon(tmp_path, **change)
    message = str(info.value)
    assert "\n" not in message and ".yaml" in message and needle in message


def test_a_bad_regex_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "en.yaml"
    text = yaml.safe_dump(BASE)
    indent = text.split("- obey*")[0].rsplit("\n", 1)[1]
    text = text.replace("- obey*", f"- obey*\n{indent}- re:(?:bad")
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"en\.yaml: line \d+: coercive: bad regex"):
        load_lexicon("en", path)


def test_a_duplicated_key_is_refused_not_merged(tmp_path: Path) -> None:
    path = tmp_path / "en.yaml"
    text = yaml.safe_dump(BASE)
    path.write_text(text.replace("categories:\n", "categories:\n  coercive: [comply]\n", 1))
    with pytest.raises(ConfigError, match=r"line \d+, column \d+: duplicate key 'coercive'"):
        load_lexicon("en", path)


def test_a_regex_term_is_guarded_by_the_characters_it_can_start_with() -> None:
    from alignbf.scoring.lexicon._base import _first_chars

    assert _first_chars("ません(?<!すみません)(?!か)") == "ま"
    assert _first_chars("(?<!ま)(?<!必)ず(?!っと)") == "ず"
    assert _first_chars("(?:の)?(?:候補|対象)に") == "の候対"
    assert _first_chars("x*y") == "xy"
    # Unknown or unbounded first characters, or an empty match, get no guard.
    for pattern in ["a?", r"\w+", "[^a]b", "[a-z]b", "(?i:a)b", "(?:a|)"]:
        assert _first_chars(pattern) is None, pattern
