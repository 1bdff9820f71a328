"""Benchmark: the lexicons on labelled text nobody tuned them on.

``data/lexicon_holdout/<lang>.yaml`` holds sentences written for the scenario by writers
who never saw the lexicons, labelled by them under ``data/codebook/<lang>.md``. The
lexicons' revisers never see these files: they are the fresh text on which the lexicon's
accuracy is measured, so a revision must never read them (the development sentences a
revision uses go to ``tests/unit/lexicon_cases/``). Labels come from one writer per
language and await a second coder.

Per language: sentences, the share scored exactly (all four categories right) and Cohen's
kappa of each category's sentence-level verdict (a hit, no echo filter) against the label.
Last line: ``languages=... sentences=... exact=... kappa_median=... exact_min=...`` and
``exact_<lang>=...`` for each language.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
HOLDOUT = ROOT / "data" / "lexicon_holdout"


def main() -> None:
    from alignbf.analysis.agreement import cohen_kappa
    from alignbf.scoring.lexicon import CATEGORIES, load_lexicon

    exact_by: dict[str, float] = {}
    kappas: list[float] = []
    total = right = 0
    print(f"{'lang':5} {'n':>4} {'exact':>6}  " + " ".join(f"{c[:5]:>6}" for c in CATEGORIES))
    for path in sorted(HOLDOUT.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        lexicon = load_lexicon(data["language"])
        cases = data["cases"]
        found = [{k for k, v in lexicon.count(c["text"]).counts.items() if v} for c in cases]
        wanted = [set(c["expect"]) for c in cases]
        exact = sum(f == w for f, w in zip(found, wanted, strict=True))
        row = []
        for category in CATEGORIES:
            a = np.array([category in f for f in found], dtype=float)
            b = np.array([category in w for w in wanted], dtype=float)
            kappa = cohen_kappa(a, b)
            row.append(kappa)
            if not np.isnan(kappa):
                kappas.append(kappa)
        exact_by[data["language"]] = exact / len(cases)
        total, right = total + len(cases), right + exact
        shown = " ".join(f"{k:6.2f}" for k in row)
        print(f"{data['language']:5} {len(cases):4d} {exact / len(cases):6.2f}  {shown}")
    per_language = " ".join(f"exact_{lang}={share:.2f}" for lang, share in exact_by.items())
    print(
        f"languages={len(exact_by)} sentences={total} exact={right / max(total, 1):.3f} "
        f"kappa_median={statistics.median(kappas):.3f} exact_min={min(exact_by.values()):.2f} "
        f"{per_language}"
    )


if __name__ == "__main__":
    main()
