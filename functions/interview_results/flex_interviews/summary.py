"""The summary of an interview's results: averages of each score and keyword frequencies."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from flex_interviews.schemas import KeywordFrequencies, ResultOut, ResultsSummary


def _average(values: Sequence[float | None]) -> float | None:
    """Mean of the non-null values (a null score is unknown, not zero); null if none."""
    given = [value for value in values if value is not None]
    return math.fsum(given) / len(given) if given else None


def _ranked(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def keyword_frequencies(results: Sequence[ResultOut]) -> KeywordFrequencies:
    """How many results mention each keyword, per category and over all categories."""
    overall: Counter[str] = Counter()
    by_category: dict[str, Counter[str]] = {}
    for result in results:
        mentioned: set[str] = set()
        for category, keywords in (result.keywords or {}).items():
            unique = set(keywords)
            by_category.setdefault(category, Counter()).update(unique)
            mentioned |= unique
        overall.update(mentioned)
    return KeywordFrequencies(
        overall=_ranked(overall),
        by_category={category: _ranked(by_category[category]) for category in sorted(by_category)},
    )


def summarize(results: Sequence[ResultOut]) -> ResultsSummary:
    return ResultsSummary(
        count=len(results),
        average_overall_score=_average([r.overall_score for r in results]),
        average_logic_score=_average([r.logic_score for r in results]),
        average_relevance_score=_average([r.relevance_score for r in results]),
        average_technical_score=_average([r.technical_score for r in results]),
        average_communication_score=_average([r.communication_score for r in results]),
        keyword_frequencies=keyword_frequencies(results),
    )
