"""Print per-language, per-category precision and recall of the shipped lexicons.

Reads the labelled sentences in ``tests/unit/lexicon_cases/<lang>.yaml``; a sentence is
predicted to hit a category when its count is above zero. The last line is a key=value
summary, e.g. ``min_precision=0.91 min_recall=0.88``.

Usage: python scripts/lexicon_precision.py [CASES_DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

from alignbf.config.yamlfile import load_yaml
from alignbf.scoring.lexicon import CATEGORIES, LANGUAGES, load_lexicon

CASES_DIR = Path(__file__).resolve().parents[1] / "tests" / "unit" / "lexicon_cases"


def confusion(language: str, cases_dir: Path) -> dict[str, tuple[int, int, int]]:
    """(true positives, false positives, false negatives) per category for one language."""
    lexicon = load_lexicon(language)
    data = load_yaml(cases_dir / f"{language}.yaml")
    table = dict.fromkeys(CATEGORIES, (0, 0, 0))
    for case in data["cases"]:
        counts = lexicon.count(case["text"]).counts
        for category in CATEGORIES:
            tp, fp, fn = table[category]
            predicted, expected = counts[category] > 0, category in case["expect"]
            table[category] = (
                tp + (predicted and expected),
                fp + (predicted and not expected),
                fn + (expected and not predicted),
            )
    return table


def ratio(numerator: int, denominator: int) -> float:
    """A share, 1.0 when nothing was there to get right."""
    return numerator / denominator if denominator else 1.0


def main(cases_dir: Path = CASES_DIR) -> int:
    print(f"{'lang':<5}{'category':<15}{'tp':>4}{'fp':>4}{'fn':>4}{'precision':>11}{'recall':>8}")
    precisions, recalls = [], []
    for language in LANGUAGES:
        for category, (tp, fp, fn) in confusion(language, cases_dir).items():
            precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
            precisions.append(precision)
            recalls.append(recall)
            print(
                f"{language:<5}{category:<15}{tp:>4}{fp:>4}{fn:>4}{precision:>11.2f}{recall:>8.2f}"
            )
    print(f"min_precision={min(precisions):.2f} min_recall={min(recalls):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else CASES_DIR))
