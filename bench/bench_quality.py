"""Search quality on the labelled evaluation set: recall@5, MRR and nDCG@10 per mode and class.

    python -m bench.bench_quality

The job descriptions of ``bench/search_eval/jobs`` (English and Korean; the directory is the
company) are uploaded to a (moto) bucket and ingested by the real ``ingest_job`` handler with
``EMBEDDING_PROVIDER=local`` (the multilingual model); each query of
``bench/search_eval/queries.json`` is then asked through the real search handler in every mode.
A result list of chunks becomes a ranking of jobs (a job's first chunk places it), scored against
the labelled relevant jobs:

- recall@5: share of the relevant jobs among the first 5 jobs;
- MRR: 1 / rank of the first relevant job (0 if absent);
- nDCG@10: binary gains, over the first 10 jobs.

Queries with no relevant job ("no_match") are not scored; they are asked with
``min_similarity`` 0.5, which must answer an empty list in every mode. The keyword side is also
measured with the query's words OR-ed instead of AND-ed (``flex_search.service.KEYWORD_MATCH_ALL``),
the choice the product makes. Writes bench/results/quality.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import statistics
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import bench_db
from bench.output import RESULTS_DIR, write_json
from devtools.apigw import rest_event
from devtools.functions import load_function
from devtools.lambda_context import FakeLambdaContext
from devtools.layer_env import layer_configured
from devtools.local.s3 import build_s3_event
from devtools.local.samples import find_samples
from devtools.local.template import Bucket

REPO_ROOT = Path(__file__).resolve().parents[1]
EVAL_DIR = REPO_ROOT / "bench" / "search_eval"
JOBS_DIR = EVAL_DIR / "jobs"
QUERIES_FILE = EVAL_DIR / "queries.json"
RESULT_FILE = RESULTS_DIR / "quality.json"
DATABASE = "bench_quality"
BUCKET = Bucket(logical_id="JobBucket", name="flex-quality-bench", versioned=False)

CHUNKS_ASKED = 50
"""top_k of each query: enough chunks for 10 distinct jobs on this corpus."""
NO_MATCH_MIN_SIMILARITY = 0.5
MODES = ("vector", "keyword", "hybrid")
# (label, mode, keyword words AND-ed): the product's modes, then the keyword side OR-ed.
VARIANTS: tuple[tuple[str, str, bool], ...] = (
    ("vector", "vector", True),
    ("keyword", "keyword", True),
    ("hybrid", "hybrid", True),
    ("keyword (OR)", "keyword", False),
    ("hybrid (OR)", "hybrid", False),
)
CLASSES = (
    "exact_skill",
    "korean_particle",
    "english_inflection",
    "paraphrase",
    "cross_lingual",
)


def load_queries() -> list[dict[str, Any]]:
    queries: list[dict[str, Any]] = json.loads(QUERIES_FILE.read_text(encoding="utf-8"))["queries"]
    known = {upload.path.relative_to(JOBS_DIR).as_posix() for upload in find_samples(JOBS_DIR)}
    for query in queries:
        missing = set(query["relevant"]) - known
        if missing:
            raise ValueError(f"query {query['id']} names unknown jobs {sorted(missing)}")
    return queries


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    from flex_shared import config
    from flex_shared.embeddings import reset_embedder

    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    config.reset_settings()
    reset_embedder()
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        config.reset_settings()
        reset_embedder()


def ingest_eval_jobs() -> dict[int, str]:
    """Upload and ingest every job of the set through the ingest handler; {job id: file}."""
    import boto3
    from moto import mock_aws
    from sqlalchemy import text

    from flex_shared import db

    uploads = find_samples(JOBS_DIR)
    with mock_aws():
        app = load_function("ingest_job")
        sys.modules["ingest_job_source"].reset_s3_client()
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET.name)
        for number, upload in enumerate(uploads, start=1):
            s3.put_object(Bucket=BUCKET.name, Key=upload.key, Body=upload.path.read_bytes())
            event = build_s3_event(
                BUCKET,
                "ObjectCreated:Put",
                upload.key,
                sequencer=f"{number:018X}",
                configuration_id="quality-bench",
            )
            context = FakeLambdaContext(function_name="ingest", remaining_ms=600_000)
            with contextlib.redirect_stdout(io.StringIO()):  # its metrics (EMF lines)
                app.lambda_handler(event, context)
    prefix_of = {upload.key: upload.path.relative_to(JOBS_DIR).as_posix() for upload in uploads}
    with db.get_engine().connect() as connection:
        rows = connection.execute(text("SELECT id, source_key FROM jobs")).all()
        chunks = connection.execute(text("SELECT count(*) FROM job_chunks")).scalar_one()
    jobs = {int(row[0]): prefix_of[row[1]] for row in rows}
    if len(jobs) != len(uploads) or not chunks:
        raise RuntimeError(f"ingested {len(jobs)} of {len(uploads)} jobs, {chunks} chunks")
    return jobs


def ask(app: ModuleType, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = app.lambda_handler(rest_event("POST", "/search", body), FakeLambdaContext())
    answer = json.loads(response["body"])
    if response["statusCode"] != 200:
        raise RuntimeError(f"search answered {response['statusCode']}: {answer}")
    results: list[dict[str, Any]] = answer["results"]
    return results


def job_ranking(results: Sequence[dict[str, Any]], jobs: dict[int, str]) -> list[str]:
    """Distinct jobs in the order of their first chunk."""
    return list(dict.fromkeys(jobs[result["job_id"]] for result in results))


def recall_at(ranking: Sequence[str], relevant: Sequence[str], k: int) -> float:
    return len(set(ranking[:k]) & set(relevant)) / len(relevant)


def reciprocal_rank(ranking: Sequence[str], relevant: Sequence[str]) -> float:
    return next((1.0 / rank for rank, job in enumerate(ranking, 1) if job in relevant), 0.0)


def ndcg_at(ranking: Sequence[str], relevant: Sequence[str], k: int) -> float:
    gain = sum(
        1 / math.log2(rank + 1) for rank, job in enumerate(ranking[:k], 1) if job in relevant
    )
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(k, len(relevant)) + 1))
    return gain / ideal


def first_rank(ranking: Sequence[str], relevant: Sequence[str]) -> int | None:
    return next((rank for rank, job in enumerate(ranking, 1) if job in relevant), None)


def _mean(values: Sequence[float]) -> float:
    return round(statistics.fmean(values), 4) if values else 0.0


def summarise(per_query: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "queries": len(per_query),
        "recall_at_5": _mean([q["recall_at_5"] for q in per_query]),
        "mrr": _mean([q["mrr"] for q in per_query]),
        "ndcg_at_10": _mean([q["ndcg_at_10"] for q in per_query]),
        "right_job_first": _mean(
            [1.0 if q["first_relevant_rank"] == 1 else 0.0 for q in per_query]
        ),
        "right_job_in_top_3": _mean(
            [1.0 if (q["first_relevant_rank"] or 99) <= 3 else 0.0 for q in per_query]
        ),
    }


@contextlib.contextmanager
def keyword_words(match_all: bool) -> Iterator[None]:
    service = sys.modules["flex_search.service"]
    previous = getattr(service, "KEYWORD_MATCH_ALL")  # noqa: B009 -- loaded by path, untyped
    setattr(service, "KEYWORD_MATCH_ALL", match_all)  # noqa: B010
    try:
        yield
    finally:
        setattr(service, "KEYWORD_MATCH_ALL", previous)  # noqa: B010


def evaluate(
    app: ModuleType, queries: Sequence[dict[str, Any]], jobs: dict[int, str]
) -> dict[str, Any]:
    scored = [query for query in queries if query["relevant"]]
    variants: dict[str, Any] = {}
    for label, mode, match_all in VARIANTS:
        per_query = []
        with keyword_words(match_all):
            for query in scored:
                results = ask(app, {"query": query["query"], "mode": mode, "top_k": CHUNKS_ASKED})
                ranking = job_ranking(results, jobs)
                relevant = query["relevant"]
                per_query.append(
                    {
                        "id": query["id"],
                        "class": query["class"],
                        "recall_at_5": recall_at(ranking, relevant, 5),
                        "mrr": reciprocal_rank(ranking, relevant),
                        "ndcg_at_10": ndcg_at(ranking, relevant, 10),
                        "first_relevant_rank": first_rank(ranking, relevant),
                        "top_jobs": ranking[:3],
                    }
                )
        variants[label] = {
            "mode": mode,
            "keyword_words": "all" if match_all else "any",
            "overall": summarise(per_query),
            "classes": {
                name: summarise([q for q in per_query if q["class"] == name]) for name in CLASSES
            },
            "queries": per_query,
        }

    no_match = []
    for query in (query for query in queries if not query["relevant"]):
        row: dict[str, Any] = {"id": query["id"], "query": query["query"]}
        for mode in MODES:
            results = ask(
                app,
                {"query": query["query"], "mode": mode, "min_similarity": NO_MATCH_MIN_SIMILARITY},
            )
            row[f"{mode}_results"] = len(results)
        best = ask(app, {"query": query["query"], "mode": "vector", "top_k": 1})
        row["best_similarity"] = round(best[0]["similarity"], 4) if best else None
        no_match.append(row)

    relevant_best = []  # how similar the nearest chunk of a query's right job is
    for query in scored:
        results = ask(app, {"query": query["query"], "mode": "vector", "top_k": CHUNKS_ASKED})
        similarities = [r["similarity"] for r in results if jobs[r["job_id"]] in query["relevant"]]
        relevant_best.append(max(similarities) if similarities else -1.0)
    return {"variants": variants, "no_match": no_match, "relevant_best_similarity": relevant_best}


def checks(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The goals, each with the number reached."""
    variants = evaluation["variants"]
    metrics = ("recall_at_5", "mrr", "ndcg_at_10")

    def hybrid_not_worse(scope: dict[str, Any], other: dict[str, Any]) -> bool:
        return all(scope[metric] >= other[metric] - 1e-9 for metric in metrics)

    hybrid, vector, keyword = (variants[name] for name in ("hybrid", "vector", "keyword"))
    per_class = {}
    for name in CLASSES:
        h, v, k = (variant["classes"][name] for variant in (hybrid, vector, keyword))
        per_class[name] = {
            # a side "has a say" when it puts some relevant job in its top 5
            "both_sides_have_a_say": v["recall_at_5"] > 0 and k["recall_at_5"] > 0,
            "hybrid_ge_vector": hybrid_not_worse(h, v),
            "hybrid_ge_keyword": hybrid_not_worse(h, k),
        }
    no_match = evaluation["no_match"]
    best = sorted(evaluation["relevant_best_similarity"])
    no_match_best = max(
        (row["best_similarity"] for row in no_match if row["best_similarity"] is not None),
        default=None,
    )
    return {
        "hybrid_ge_vector_overall": hybrid_not_worse(hybrid["overall"], vector["overall"]),
        "hybrid_ge_keyword_overall": hybrid_not_worse(hybrid["overall"], keyword["overall"]),
        "per_class": per_class,
        "exact_skill_first_keyword": keyword["classes"]["exact_skill"]["right_job_first"],
        "exact_skill_first_hybrid": hybrid["classes"]["exact_skill"]["right_job_first"],
        "korean_particle_first_keyword": keyword["classes"]["korean_particle"]["right_job_first"],
        "cross_lingual_top_3_vector": vector["classes"]["cross_lingual"]["right_job_in_top_3"],
        "cross_lingual_top_3_hybrid": hybrid["classes"]["cross_lingual"]["right_job_in_top_3"],
        "no_match_empty_at_min_similarity": all(
            row[f"{mode}_results"] == 0 for row in no_match for mode in MODES
        ),
        # What a threshold costs: how similar the right job's best chunk is, per relevant query
        "no_match_best_similarity_max": no_match_best,
        "relevant_best_similarity_min_median_max": [
            round(best[0], 4),
            round(statistics.median(best), 4),
            round(best[-1], 4),
        ],
        "relevant_queries_kept_at_min_similarity_0_5": _mean(
            [1.0 if value >= NO_MATCH_MIN_SIMILARITY else 0.0 for value in best]
        ),
        "relevant_queries_above_the_best_no_match": _mean(
            [1.0 if no_match_best is not None and value > no_match_best else 0.0 for value in best]
        ),
    }


def run() -> dict[str, Any]:
    queries = load_queries()
    url = bench_db.ensure_database(DATABASE, recreate=True)
    env = {
        "EMBEDDING_PROVIDER": "local",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_SERVICE_NAME": "flex-bench",
        "POWERTOOLS_METRICS_NAMESPACE": "FlexBench",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with layer_configured(url), _environment(**env):
        from flex_shared.embeddings import get_embedder

        jobs = ingest_eval_jobs()
        app = load_function("search")
        evaluation = evaluate(app, queries, jobs)
        model = get_embedder().model_id
        from sqlalchemy import text

        from flex_shared import db

        with db.get_engine().connect() as connection:
            chunks = connection.execute(text("SELECT count(*) FROM job_chunks")).scalar_one()
    result = {
        "embedding_model": model,
        "jobs": len(jobs),
        "chunks": int(chunks),
        "queries": len(queries),
        "queries_per_class": {
            name: sum(1 for q in queries if q["class"] == name) for name in [*CLASSES, "no_match"]
        },
        "chunks_asked_per_query": CHUNKS_ASKED,
        **evaluation,
        "checks": checks(evaluation),
    }
    write_json(RESULT_FILE, result)
    return result


def print_table(result: dict[str, Any]) -> None:
    print(
        f"\nsearch quality: {result['jobs']} jobs ({result['chunks']} chunks),"
        f" {result['queries']} queries, model {result['embedding_model']}"
    )
    print("recall@5 / MRR / nDCG@10 per mode (rows) and query class (columns)\n")
    columns = [*CLASSES, "overall"]
    print(f"{'mode':<14}" + "".join(f"{name[:18]:>20}" for name in columns))
    for label, variant in result["variants"].items():
        cells = []
        for name in columns:
            scope = variant["overall"] if name == "overall" else variant["classes"][name]
            cells.append(f"{scope['recall_at_5']:.2f}/{scope['mrr']:.2f}/{scope['ndcg_at_10']:.2f}")
        print(f"{label:<14}" + "".join(f"{cell:>20}" for cell in cells))
    print()
    for name, value in result["checks"].items():
        print(f"  {name}: {value}")
    print(f"\nwritten to {RESULT_FILE.relative_to(REPO_ROOT)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    print_table(run())


if __name__ == "__main__":
    main()
