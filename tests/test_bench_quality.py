"""The search evaluation set is what its README row says, and its metrics are the textbook ones."""

from __future__ import annotations

import math
import re

import pytest

from bench import bench_quality
from devtools.local.samples import find_samples

HANGUL = re.compile(r"[가-힣]")


def test_the_evaluation_set_has_enough_jobs_and_queries_in_every_class():
    jobs = find_samples(bench_quality.JOBS_DIR)
    korean = [job for job in jobs if HANGUL.search(job.path.read_text(encoding="utf-8"))]
    assert len(jobs) >= 16
    assert 6 <= len(korean) <= len(jobs) - 6  # both languages, each well represented
    queries = bench_quality.load_queries()  # also checks every label names a real job
    assert len(queries) >= 30
    classes = {query["class"] for query in queries}
    assert classes == {*bench_quality.CLASSES, "no_match"}
    for name in classes:
        assert sum(1 for query in queries if query["class"] == name) >= 5
    assert all(query["relevant"] for query in queries if query["class"] != "no_match")
    assert not any(query["relevant"] for query in queries if query["class"] == "no_match")
    assert len({query["id"] for query in queries}) == len(queries)


def test_cross_lingual_queries_ask_in_the_other_language():
    languages = {
        job.path.relative_to(bench_quality.JOBS_DIR).as_posix(): bool(
            HANGUL.search(job.path.read_text(encoding="utf-8"))
        )
        for job in find_samples(bench_quality.JOBS_DIR)
    }
    for query in bench_quality.load_queries():
        if query["class"] == "cross_lingual":
            asked_in_korean = bool(HANGUL.search(query["query"]))
            assert all(languages[job] != asked_in_korean for job in query["relevant"]), query


def test_job_ranking_keeps_each_jobs_first_chunk():
    jobs = {1: "a", 2: "b", 3: "c"}
    results = [{"job_id": 2}, {"job_id": 2}, {"job_id": 1}, {"job_id": 3}, {"job_id": 1}]
    assert bench_quality.job_ranking(results, jobs) == ["b", "a", "c"]


@pytest.mark.parametrize(
    ("ranking", "relevant", "recall", "mrr", "ndcg"),
    [
        (["x", "a"], ["a"], 1.0, 0.5, 1 / math.log2(3)),
        (["a", "x"], ["a"], 1.0, 1.0, 1.0),
        (["x"] * 5 + ["a"], ["a"], 0.0, 1 / 6, 1 / math.log2(7)),
        (
            ["x", "a", "y", "b"],
            ["a", "b"],
            1.0,
            0.5,
            (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3)),
        ),
        (["x"], ["a"], 0.0, 0.0, 0.0),
    ],
)
def test_metrics(ranking, relevant, recall, mrr, ndcg):
    assert bench_quality.recall_at(ranking, relevant, 5) == pytest.approx(recall)
    assert bench_quality.reciprocal_rank(ranking, relevant) == pytest.approx(mrr)
    assert bench_quality.ndcg_at(ranking, relevant, 10) == pytest.approx(ndcg)
