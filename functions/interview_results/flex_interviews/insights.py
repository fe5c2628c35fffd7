"""The arithmetic of a job's insights, on what the aggregates give: quartiles from a few order
statistics, the mean from an exact sum, the expected keywords' coverage from per-question counts.

Quartiles are defined as Python's ``statistics`` module defines them, and computed with its
exact formulas (so they agree to the last bit): ``p25``/``p75`` are
``statistics.quantiles(data, n=4, method="inclusive")`` (linear interpolation between the order
statistics at ``i * (n - 1) / 4``: R's type 7, NumPy's default), ``median`` is
``statistics.median``. Only the order statistics those formulas touch are read from the
database (:func:`quartile_positions`), never the sorted data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Protocol

QUARTERS = 4


@dataclass(frozen=True)
class Quartiles:
    p25: float | None
    median: float | None
    p75: float | None


def quartile_positions(count: int) -> list[int]:
    """The 0-based positions in sorted order that :func:`quartiles` reads for ``count``
    values."""
    if count == 0:
        return []
    last = count - 1
    positions = {(count - 1) // 2, count // 2}  # the median's
    for i in (1, 3):  # the quartiles' interpolation ends
        j = i * last // QUARTERS
        positions.update({j, min(j + 1, last)})
    return sorted(positions)


def quartiles(count: int, value_at: Mapping[int, float]) -> Quartiles:
    """p25, median and p75 of ``count`` values, given the values at
    :func:`quartile_positions` (``value_at[k]`` = the k-th smallest). With one value, all three
    are that value (``statistics.quantiles`` refuses fewer than two before Python 3.13, which
    answers so); with none, all are None."""
    if count == 0:
        return Quartiles(None, None, None)
    if count == 1:
        only = value_at[0]
        return Quartiles(only, only, only)
    # statistics.quantiles(method="inclusive"), n=4:
    #   m = ld - 1; j, delta = divmod(i * m, n); (data[j] * (n - delta) + data[j + 1] * delta) / n
    last = count - 1
    cuts = []
    for i in (1, 3):
        j, delta = divmod(i * last, QUARTERS)
        cuts.append((value_at[j] * (QUARTERS - delta) + value_at[j + 1] * delta) / QUARTERS)
    # statistics.median: the middle value, or the mean of the two middle values.
    middle = count // 2
    median = value_at[middle] if count % 2 == 1 else (value_at[middle - 1] + value_at[middle]) / 2
    return Quartiles(cuts[0], median, cuts[1])


def mean(total: Decimal, count: int) -> float | None:
    """``total / count`` rounded once, to the nearest float; None for no values."""
    return float(Fraction(total) / count) if count else None


class QuestionCoverage(Protocol):
    """One question's share in the coverage: ``results`` answer it, it expects ``expected``
    distinct keywords, and the results hold ``found`` of them in all (each result counting
    each expected keyword it mentions once)."""

    @property
    def results(self) -> int: ...
    @property
    def expected(self) -> int: ...
    @property
    def found(self) -> int: ...


def expected_keyword_coverage(questions: Sequence[QuestionCoverage]) -> float | None:
    """The mean over results of (expected keywords found / expected keywords): each question
    adds ``found / expected`` for all its results together. None when no result answers a
    question with expected keywords."""
    answered = [question for question in questions if question.expected and question.results]
    results = sum(question.results for question in answered)
    if not results:
        return None
    shares = sum(Fraction(question.found, question.expected) for question in answered)
    return float(shares / results)
