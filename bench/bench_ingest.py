"""Ingestion throughput and latency, through the real ``ingest_job`` handler.

1. Chunks/s through the handler (moto S3 -> extract -> chunk -> local embedder -> one
   transaction with COPY) against a baseline that writes the very same chunk rows with a
   plain COPY (vectors precomputed, nothing else). Both write into ``job_chunks`` with its HNSW
   index, which is most of the cost of a row. Goal: handler >= 0.5x the baseline.
   For scale, the same rows through pg8000's ``executemany`` (one INSERT per row).
2. A 40-chunk description through the handler with Titan replaced by ``devtools.fake_titan``
   at 100 ms per call (warm container). Goal: under 1 second.

    python -m bench.bench_ingest [--documents 30] [--quick]

Prints a table and writes bench/results/ingest.json; ``run()`` returns the same dict.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import text

# `python -m bench.bench_ingest` from the repository root: the layer is not installed.
_LAYER = Path(__file__).resolve().parents[1] / "layers" / "shared"
if str(_LAYER) not in sys.path:
    sys.path.insert(0, str(_LAYER))

from bench import bench_db  # noqa: E402
from bench.output import write_json  # noqa: E402
from devtools.fake_titan import serve_in_subprocess  # noqa: E402
from devtools.functions import load_function  # noqa: E402
from devtools.lambda_context import FakeLambdaContext  # noqa: E402
from devtools.layer_env import layer_configured, layer_environment  # noqa: E402
from flex_shared import config, db  # noqa: E402
from flex_shared.chunking import chunk_text  # noqa: E402
from flex_shared.embeddings import get_embedder  # noqa: E402

BUCKET = "flex-bench-jobs"
FUNCTION_DIR = bench_db.REPO_ROOT / "functions" / "ingest_job"
RESULT_FILE = bench_db.RESULTS_DIR / "ingest.json"
DATABASE = "bench_ingest"

_SENTENCES = (
    "We are looking for an engineer who enjoys building reliable data systems.",
    "You will design APIs that serve millions of interview sessions every month.",
    "Experience with PostgreSQL, query planning and indexing is required.",
    "우리는 지원자의 경험을 존중하고 성장할 수 있는 환경을 제공합니다.",
    "대규모 트래픽을 처리하는 백엔드 시스템을 설계하고 운영합니다.",
    "You write tests first, review code kindly and document decisions.",
    "Familiarity with vector search, embeddings and pgvector is a plus.",
    "주요 업무: 채용 플랫폼 검색 기능 개발, 데이터 파이프라인 운영.",
)


def description_with_chunks(chunks: int, seed: int = 0) -> str:
    """A job description the layer's chunker splits into exactly ``chunks`` pieces (or the
    closest count above it, if its boundaries do not allow exactly)."""
    paragraphs: list[str] = [f"Job {seed}: Senior Backend Engineer"]
    n = 0
    while len(chunk_text("\n\n".join(paragraphs))) < chunks:
        sentences = [_SENTENCES[(seed + n + i) % len(_SENTENCES)] for i in range(4)]
        paragraphs.append(f"Section {n} of job {seed}. " + " ".join(sentences))
        n += 1
    return "\n\n".join(paragraphs)


def _record(key: str, sequencer: int) -> dict[str, Any]:
    from urllib.parse import quote_plus

    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "responseElements": {"x-amz-request-id": f"BENCH{sequencer:011X}"},
        "s3": {
            "bucket": {"name": BUCKET},
            "object": {"key": quote_plus(key, safe="/"), "sequencer": f"{sequencer:018X}"},
        },
    }


def _truncate() -> None:
    with db.get_engine().begin() as connection:
        connection.execute(text("TRUNCATE job_chunks, jobs RESTART IDENTITY CASCADE"))


def _invoke(app: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
    result, _ = _invoke_with_metrics(app, event)
    return result


def _invoke_with_metrics(
    app: ModuleType, event: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The handler's answer and the metrics it emitted (its EMF line on stdout)."""
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        result: dict[str, Any] = app.lambda_handler(
            event, FakeLambdaContext(function_name="flex-bench-ingest-job", remaining_ms=60_000)
        )
    metrics: dict[str, Any] = {}
    for line in captured.getvalue().splitlines():
        if '"_aws"' in line:
            metrics.update(json.loads(line))
    return result, metrics


def _handler_throughput(
    app: ModuleType, s3: Any, documents: int, chunks_each: int
) -> dict[str, Any]:
    bodies = {
        f"jobs/{1 + n % 50}/bench job {n}.txt": description_with_chunks(chunks_each, seed=n)
        for n in range(documents)
    }
    for key, body in bodies.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode("utf-8"))
    _truncate()
    started = time.perf_counter()
    for sequencer, key in enumerate(bodies, start=1):
        result = _invoke(app, {"Records": [_record(key, sequencer)]})
        assert result["outcomes"] == ["written"], result
    elapsed = time.perf_counter() - started
    with db.get_engine().connect() as connection:
        chunks = int(connection.execute(text("SELECT count(*) FROM job_chunks")).scalar_one())
    return {"documents": documents, "chunks": chunks, "seconds": elapsed, "bodies": bodies}


def _baseline_rows(bodies: dict[str, str]) -> tuple[list[tuple[str, int, list[str]]], Any]:
    embedder = get_embedder()
    documents = [
        (key, 1 + n % 50, chunk_text(body)) for n, (key, body) in enumerate(bodies.items())
    ]
    vectors = [embedder.embed_documents(chunks) for _, _, chunks in documents]
    return documents, vectors


def _copy_baseline(bodies: dict[str, str]) -> dict[str, Any]:
    """The same rows by a plain COPY per document (jobs inserted beforehand, untimed)."""
    store = sys.modules["flex_ingest.store"]
    embedder = get_embedder()
    documents, vectors = _baseline_rows(bodies)
    _truncate()
    job_ids = db.run_in_transaction(
        lambda connection: [
            connection.execute(
                text(
                    "INSERT INTO jobs (company_id, title, description, source_bucket, source_key)"
                    " VALUES (:company, 'bench', :description, :bucket, :key) RETURNING id"
                ),
                {"company": company, "description": bodies[key], "bucket": BUCKET, "key": key},
            ).scalar_one()
            for key, company, _ in documents
        ]
    )
    payloads = [
        store.copy_rows(
            job_id,
            company,
            store.EmbeddedChunks(chunks, doc_vectors, embedder.model_id, embedder.dimensions),
        )
        for job_id, (_, company, chunks), doc_vectors in zip(
            job_ids, documents, vectors, strict=True
        )
    ]
    engine = db.get_engine()
    started = time.perf_counter()
    for payload in payloads:
        with engine.begin() as connection:
            cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
            cursor.execute(store._COPY_CHUNKS, stream=io.BytesIO(payload))
            cursor.close()
    elapsed = time.perf_counter() - started
    rows = sum(len(chunks) for _, _, chunks in documents)
    return {"chunks": rows, "seconds": elapsed}


_INSERT_CHUNK = (
    "INSERT INTO job_chunks (job_id, chunk_index, chunk_text, embedding, company_id,"
    " embedding_model, embedding_dimensions) VALUES (%s, %s, %s, %s::vector, %s, %s, %s)"
)


def _executemany(bodies: dict[str, str]) -> dict[str, Any]:
    """The same rows through pg8000's executemany: one INSERT round trip per row."""
    embedder = get_embedder()
    documents, vectors = _baseline_rows(bodies)
    _truncate()
    engine = db.get_engine()
    with engine.begin() as connection:
        job_ids = [
            connection.execute(
                text(
                    "INSERT INTO jobs (company_id, title, description) VALUES (:c, 'b', 'd')"
                    " RETURNING id"
                ),
                {"c": company},
            ).scalar_one()
            for _, company, _ in documents
        ]
    started = time.perf_counter()
    rows = 0
    for job_id, (_, company, chunks), doc_vectors in zip(job_ids, documents, vectors, strict=True):
        params = [
            (
                job_id,
                index,
                chunk,
                "[" + ",".join(map(repr, vector)) + "]",
                company,
                embedder.model_id,
                embedder.dimensions,
            )
            for index, (chunk, vector) in enumerate(zip(chunks, doc_vectors, strict=True))
        ]
        rows += len(params)
        with engine.begin() as connection:
            cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
            cursor.executemany(_INSERT_CHUNK, params)
            cursor.close()
    return {"chunks": rows, "seconds": time.perf_counter() - started}


def _fake_titan_latency(app: ModuleType, s3: Any, runs: int, concurrency: int) -> dict[str, Any]:
    """New 40-chunk descriptions (new keys) into the table as the earlier steps left it."""
    with (
        serve_in_subprocess(latency=0.1) as endpoint,
        layer_environment(
            EMBEDDING_PROVIDER="titan",
            AWS_ENDPOINT_URL_BEDROCK_RUNTIME=endpoint,
            EMBEDDING_MAX_CONCURRENCY=str(concurrency),
        ),
    ):
        embedder = get_embedder()
        with db.get_engine().connect() as connection:
            rows_before = int(
                connection.execute(text("SELECT count(*) FROM job_chunks")).scalar_one()
            )
        # Warm the container: clients, DB connection, imports (a cold start is a separate cost).
        warmup = f"jobs/1/warmup-{concurrency}.txt"
        s3.put_object(Bucket=BUCKET, Key=warmup, Body=b"Warm up\n\ntext")
        _invoke(app, {"Records": [_record(warmup, 1)]})
        totals, embedding, chunk_counts = [], [], []
        for run in range(runs):
            body = description_with_chunks(40, seed=1000 * concurrency + run)
            key = f"jobs/1/forty-{concurrency}-{run}.txt"
            chunk_counts.append(len(chunk_text(body)))
            s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode("utf-8"))
            started = time.perf_counter()
            result, metrics = _invoke_with_metrics(app, {"Records": [_record(key, 10 + run)]})
            totals.append(time.perf_counter() - started)
            assert result["outcomes"] == ["written"], result
            embedding.append(metrics["EmbeddingTime"][0] / 1000)
        return {
            "latency_per_call_ms": 100,
            "model_id": embedder.model_id,
            "max_concurrency": concurrency,
            "rows_in_table_before": rows_before,
            "chunks": chunk_counts,
            "seconds": [round(t, 3) for t in totals],
            "embedding_seconds": [round(t, 3) for t in embedding],
            "rest_seconds": [round(t - e, 3) for t, e in zip(totals, embedding, strict=True)],
            "median_seconds": round(statistics.median(totals), 3),
            "max_seconds": round(max(totals), 3),
            "median_embedding_seconds": round(statistics.median(embedding), 3),
            "goal_seconds": 1.0,
        }


def run(
    documents: int = 30,
    chunks_each: int = 40,
    titan_runs: int = 5,
    titan_concurrency: tuple[int, ...] = (0, 16),
) -> dict[str, Any]:
    """Run both measurements; ``titan_concurrency`` 0 means the configured default."""
    from moto import mock_aws

    url = bench_db.ensure_database(DATABASE)
    env = {
        "EMBEDDING_PROVIDER": "hash",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_SERVICE_NAME": "flex-bench",
        "POWERTOOLS_METRICS_NAMESPACE": "FlexBench",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with layer_configured(url), layer_environment(**env), mock_aws():
        import boto3

        app = load_function("ingest_job")
        sys.modules["flex_ingest.source"].reset_s3_client()
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        default_concurrency = config.get_settings().embedding_max_concurrency

        # Warm-up (imports, connection pool) so that every path starts equal.
        _handler_throughput(app, s3, 2, 5)
        handler = _handler_throughput(app, s3, documents, chunks_each)
        baseline = _copy_baseline(handler["bodies"])
        executemany = _executemany(handler["bodies"])  # leaves the corpus in the table
        titan = [
            _fake_titan_latency(app, s3, titan_runs, concurrency or default_concurrency)
            for concurrency in titan_concurrency
        ]
        _truncate()

    def rate(measured: dict[str, Any]) -> dict[str, Any]:
        return {
            "chunks": measured["chunks"],
            "seconds": round(measured["seconds"], 3),
            "chunks_per_second": round(measured["chunks"] / measured["seconds"], 1),
        }

    ratio = (handler["chunks"] / handler["seconds"]) / (baseline["chunks"] / baseline["seconds"])
    default_titan = titan[0]
    return {
        "documents": documents,
        "chunks_per_document": chunks_each,
        "handler": rate(handler),
        "copy_baseline": rate(baseline),
        "executemany": rate(executemany),
        "copy_seconds_per_document": round(baseline["seconds"] / documents, 3),
        "handler_vs_copy": round(ratio, 3),
        "handler_vs_copy_goal": 0.5,
        "fake_titan_40_chunks": titan,
        "passed": ratio >= 0.5 and default_titan["median_seconds"] < 1.0,
    }


def _print_table(result: dict[str, Any]) -> None:
    rows = [
        ("handler (S3 + extract + chunk + local embed + COPY)", result["handler"]),
        ("plain COPY of the same rows (baseline)", result["copy_baseline"]),
        ("same rows by pg8000 executemany (row by row)", result["executemany"]),
    ]
    print(f"{'path':<55} {'chunks':>7} {'seconds':>8} {'chunks/s':>9}")
    for label, row in rows:
        line = f"{label:<55} {row['chunks']:>7} {row['seconds']:>8.3f}"
        print(f"{line} {row['chunks_per_second']:>9.1f}")
    print(f"handler / COPY = {result['handler_vs_copy']:.2f}x (goal >= 0.5x)")
    print()
    print("40-chunk description, fake Titan at 100 ms/call (own process), warm container")
    print(f"{'concurrency':>11} {'rows before':>11} {'median s':>9} {'max s':>7} {'embed s':>8}")
    for titan in result["fake_titan_40_chunks"]:
        print(
            f"{titan['max_concurrency']:>11} {titan['rows_in_table_before']:>11}"
            f" {titan['median_seconds']:>9.3f} {titan['max_seconds']:>7.3f}"
            f" {titan['median_embedding_seconds']:>8.3f}"
        )
    print(
        f"(for scale: the plain COPY of one {result['chunks_per_document']}-chunk document into"
        f" the HNSW-indexed table took {result['copy_seconds_per_document']:.3f} s here)"
    )
    print("goal: median < 1 s at the configured concurrency")
    print("PASS" if result["passed"] else "FAIL")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=30)
    parser.add_argument("--chunks", type=int, default=40, help="chunks per document")
    parser.add_argument("--quick", action="store_true", help="small run (smoke test)")
    args = parser.parse_args(argv)
    documents = 4 if args.quick else args.documents
    result = run(documents=documents, chunks_each=args.chunks, titan_runs=2 if args.quick else 5)
    _print_table(result)
    write_json(RESULT_FILE, result)
    print(f"wrote {RESULT_FILE.relative_to(bench_db.REPO_ROOT)}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
