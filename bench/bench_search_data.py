"""Synthetic search corpus for the benchmark: clustered unit-norm vectors, bulk-loaded with COPY.

Each chunk also has a job-ad text (``chunk_text_of``): sentences of the evaluation set's English
and Korean job descriptions, drawn at random, with the technologies they name swapped for others
of a long list, so the keyword index (``search_vector``, computed by PostgreSQL on COPY) holds a
real vocabulary: common words in most chunks, one technology in about 1% of them.

Everything is a pure function of :class:`Corpus` (seeded), so a later run regenerates the same
vectors for exact ground truth instead of reading 400 MB back from the database, and a database
already built with the same parameters is reused (loading + HNSW build take minutes).
"""

from __future__ import annotations

import io
import json
import random
import re
import struct
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.engine import Engine

HNSW_DDL = (
    "CREATE INDEX idx_job_chunks_embedding_hnsw ON job_chunks"
    " USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
)
_BATCH_ROWS = 10_000
EVAL_JOBS_DIR = Path(__file__).resolve().parent / "search_eval" / "jobs"
_TECHNOLOGY_NAMES = (
    "Python Java Kotlin Swift Go Rust Scala TypeScript JavaScript Ruby PHP Elixir Haskell Clojure"
    " Dart Julia Perl Lua Erlang OCaml Spring Django Flask FastAPI Rails Laravel Express NestJS"
    " React Vue Angular Svelte Next.js Nuxt SwiftUI UIKit Flutter Xamarin Unity Unreal Godot"
    " PostgreSQL MySQL MariaDB Oracle MongoDB Redis Cassandra DynamoDB Elasticsearch OpenSearch"
    " ClickHouse Snowflake BigQuery Redshift Databricks Spark Flink Kafka Pulsar RabbitMQ Airflow"
    " Dagster Prefect dbt Looker Tableau Superset Terraform Pulumi Ansible Chef Puppet Kubernetes"
    " Helm ArgoCD Jenkins CircleCI GitLab Prometheus Grafana Datadog Splunk Sentry PagerDuty"
    " AWS Azure GCP Lambda ECS EKS Fargate CloudFormation PyTorch TensorFlow JAX Keras XGBoost"
    " LightGBM scikit-learn Pandas Polars NumPy Figma Sketch Zeplin Jira Confluence Notion"
    " Zendesk Salesforce HubSpot SAP ABAP Fiori Appium Selenium Cypress Playwright JUnit pytest"
    " AUTOSAR RTOS Zephyr FreeRTOS Yocto gRPC GraphQL Celery Sidekiq Nginx Envoy Istio Linkerd"
    " Vault Consul Nomad Bazel Gradle Maven Webpack Vite Storybook Redux MobX Hilt Room Combine"
)
TECHNOLOGIES = tuple(_TECHNOLOGY_NAMES.split())
# A technology name not inside a longer Latin word (Go, not Google); Korean may follow it.
_TECHNOLOGY = re.compile(
    "(?<![A-Za-z])(?:"
    + "|".join(re.escape(name) for name in sorted(TECHNOLOGIES, key=len, reverse=True))
    + ")(?![A-Za-z])"
)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)


FILTER_TIERS: dict[str, tuple[int, ...]] = {
    "30%": (1,),
    "1%": tuple(range(2, 42)),
    "0.1%": tuple(range(101, 401)),
}
"""Company ids per share of the rows their filter keeps (see ``Corpus.company_of_job``)."""


@dataclass(frozen=True)
class Corpus:
    rows: int = 100_000
    dimensions: int = 1024
    clusters: int = 100
    topics: int = 10
    """Clusters belong to topics (as job ads do: backend and data roles are closer to each other
    than to nursing): centres of one topic share a direction (cosine ~0.5). Without it, every
    cluster is equally far from every other, greedy graph search has nothing to descend along
    between them, and HNSW recall measures luck rather than the index."""
    chunks_per_job: int = 10
    noise: float = 1.0  # noise norm relative to the unit cluster centre
    seed: int = 20_261_124
    job_ad_texts: bool = True
    """Job-ad texts (the keyword index is then real, and the load slower: PostgreSQL computes
    every chunk's tsvector); False gives short labels, for vector-only measurements."""

    @property
    def jobs(self) -> int:
        return -(-self.rows // self.chunks_per_job)

    company_layout: str = "tiered-v1"
    """Filters of three sizes (:data:`FILTER_TIERS`): company 1 holds 30% of the jobs,
    companies 2-41 1% each, companies 101-400 0.1% each."""

    def company_of_job(self, job_id: int) -> int:
        slot = (job_id - 1) % 1000
        if slot < 300:
            return 1
        if slot < 700:
            return 2 + (slot - 300) // 10
        return 101 + (slot - 700)

    def centres(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 0])
        topics = rng.standard_normal((self.topics, self.dimensions))
        topics /= np.linalg.norm(topics, axis=1, keepdims=True)
        # cluster = its topic + an own direction of the same norm
        own = rng.standard_normal((self.clusters, self.dimensions)) / np.sqrt(self.dimensions)
        centres: np.ndarray = topics[np.arange(self.clusters) % self.topics] + own
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        return centres

    def _sample(self, rng: np.random.Generator, count: int, centres: np.ndarray) -> np.ndarray:
        chosen = centres[rng.integers(0, self.clusters, count)]
        noise = rng.standard_normal((count, self.dimensions)) * (
            self.noise / np.sqrt(self.dimensions)
        )
        vectors: np.ndarray = chosen + noise
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors.astype(np.float32)

    def batches(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row number, float32 unit vectors) in row order; row n is chunk id n + 1."""
        centres = self.centres()
        for start in range(0, self.rows, _BATCH_ROWS):
            count = min(_BATCH_ROWS, self.rows - start)
            rng = np.random.default_rng([self.seed, 1, start])
            yield start, self._sample(rng, count, centres)

    def queries(self, count: int) -> np.ndarray:
        """Query vectors from the same distribution, not in the corpus."""
        return self._sample(np.random.default_rng([self.seed, 2]), count, self.centres())

    def fingerprint(self) -> dict[str, Any]:
        fields = asdict(self)
        fields["texts"] = "eval-sentences-v1" if fields.pop("job_ad_texts") else "labels"
        return fields

    def chunk_text_of(self, row: int) -> str:
        """Row ``row``'s text: 6 to 12 job-ad sentences, their technologies re-drawn (or a
        short label, when the keyword index does not matter)."""
        if not self.job_ad_texts:
            return f"chunk {row + 1} of synthetic job {row // self.chunks_per_job + 1}"
        rng = random.Random(f"{self.seed}-text-{row}")
        bank = sentence_bank()
        sentences = [
            _TECHNOLOGY.sub(lambda _: rng.choice(TECHNOLOGIES), rng.choice(bank))
            for _ in range(rng.randint(6, 12))
        ]
        return "\n".join(sentences)


@lru_cache(maxsize=1)
def sentence_bank() -> tuple[str, ...]:
    """Every line of the evaluation set's job descriptions with at least four words."""
    lines = []
    for path in sorted(EVAL_JOBS_DIR.rglob("*.*")):
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip().lstrip("-#[ ").rstrip("]")
            if len(line.split()) >= 4:
                lines.append(line)
    return tuple(lines)


def exact_top_k(corpus: Corpus, queries: np.ndarray, k: int) -> list[list[int]]:
    """Exact cosine top-k chunk ids per query (unit vectors: largest inner product)."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), k), dtype=np.int64)
    for start, vectors in corpus.batches():
        scores = queries @ vectors.T
        ids = np.broadcast_to(np.arange(start + 1, start + 1 + len(vectors)), scores.shape)
        all_scores = np.concatenate([best_scores, scores], axis=1)
        all_ids = np.concatenate([best_ids, ids], axis=1)
        top = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
        best_scores = np.take_along_axis(all_scores, top, axis=1)
        best_ids = np.take_along_axis(all_ids, top, axis=1)
    return [[int(i) for i in row] for row in best_ids]


def _binary_rows(rows: Iterator[tuple[bytes, ...]]) -> io.BytesIO:
    buffer = io.BytesIO()
    buffer.write(_COPY_HEADER)
    for fields in rows:
        buffer.write(struct.pack("!h", len(fields)))
        for field in fields:
            buffer.write(struct.pack("!i", len(field)))
            buffer.write(field)
    buffer.write(_COPY_TRAILER)
    buffer.seek(0)
    return buffer


def _int4(value: int) -> bytes:
    return struct.pack("!i", value)


def _vector(values: np.ndarray) -> bytes:
    # pgvector's binary format: int16 dimensions, int16 unused, float4 values (network order).
    return struct.pack("!hh", len(values), 0) + values.astype(">f4").tobytes()


def _copy(engine: Engine, statement: str, buffer: io.BytesIO) -> None:
    with engine.begin() as connection:
        cursor: Any = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(statement, stream=buffer)


def _peak_rss_mb(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of a server process on this machine; None elsewhere."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def stored_build(engine: Engine, corpus: Corpus) -> dict[str, Any] | None:
    """The recorded build of this corpus, if the database holds exactly it with its index."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TABLE IF NOT EXISTS bench_search_build"
                " (id int PRIMARY KEY, fingerprint jsonb NOT NULL, info jsonb NOT NULL)"
            )
        )
        row = connection.execute(
            text("SELECT fingerprint, info FROM bench_search_build WHERE id = 1")
        ).first()
        index = connection.execute(
            text("SELECT to_regclass('idx_job_chunks_embedding_hnsw') IS NOT NULL")
        ).scalar()
    if row is None or not index or row[0] != corpus.fingerprint():
        return None
    return dict(row[1])


def build(engine: Engine, corpus: Corpus, *, log: Any = print) -> dict[str, Any]:
    """Load ``corpus`` (COPY) and build the HNSW index; reuse an identical earlier build."""
    reused = stored_build(engine, corpus)
    if reused is not None:
        log(f"reusing the stored corpus ({corpus.rows:,} rows)")
        return {**reused, "reused": True}

    with engine.begin() as connection:
        connection.execute(text("DELETE FROM bench_search_build"))
        connection.execute(text("DROP INDEX IF EXISTS idx_job_chunks_embedding_hnsw"))
        connection.execute(text("TRUNCATE jobs, job_chunks RESTART IDENTITY CASCADE"))

    started = time.perf_counter()
    job_rows = (
        (
            _int4(job_id),
            _int4(corpus.company_of_job(job_id)),
            f"Synthetic job {job_id}".encode(),
            f"Synthetic description of job {job_id}".encode(),
        )
        for job_id in range(1, corpus.jobs + 1)
    )
    _copy(
        engine,
        "COPY jobs (id, company_id, title, description) FROM STDIN WITH (FORMAT binary)",
        _binary_rows(job_rows),
    )
    for start, vectors in corpus.batches():
        chunk_rows = []
        for offset, vector in enumerate(vectors):
            row = start + offset
            job_id = row // corpus.chunks_per_job + 1
            chunk_rows.append(
                (
                    _int4(row + 1),
                    _int4(job_id),
                    corpus.chunk_text_of(row).encode(),
                    _vector(vector),
                    _int4(row % corpus.chunks_per_job),
                    _int4(corpus.company_of_job(job_id)),
                )
            )
        _copy(
            engine,
            "COPY job_chunks (id, job_id, chunk_text, embedding, chunk_index, company_id)"
            " FROM STDIN WITH (FORMAT binary)",
            _binary_rows(iter(chunk_rows)),
        )
        log(f"  loaded {start + len(vectors):,} / {corpus.rows:,} chunks")
    with engine.begin() as connection:
        for table in ("jobs", "job_chunks"):
            connection.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
                )
            )
    load_seconds = time.perf_counter() - started

    # The graph must fit in maintenance_work_mem or the build slows down badly (NOTES.md):
    # about 4.1 KB of vector plus neighbour lists per element, ~8 KB in all. One parallel
    # worker: 2 cores.
    work_mem_mb = max(1024, min(12288, corpus.rows * 10 // 1024))
    log(f"building HNSW (m=16, ef_construction=64), maintenance_work_mem={work_mem_mb}MB ...")
    started = time.perf_counter()
    with engine.begin() as connection:
        backend = int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
        connection.execute(
            text("SELECT set_config('maintenance_work_mem', :v, true)"), {"v": f"{work_mem_mb}MB"}
        )
        connection.execute(text("SELECT set_config('max_parallel_maintenance_workers', '1', true)"))
        connection.execute(text(HNSW_DDL))
        peak_rss_mb = _peak_rss_mb(backend)
    build_seconds = time.perf_counter() - started

    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE jobs"))
        connection.execute(text("VACUUM ANALYZE job_chunks"))
        index_bytes = int(
            connection.execute(
                text("SELECT pg_relation_size('idx_job_chunks_embedding_hnsw')")
            ).scalar_one()
        )
        table_bytes = int(
            connection.execute(text("SELECT pg_total_relation_size('job_chunks')")).scalar_one()
        )
    info = {
        "load_seconds": round(load_seconds, 2),
        "index_build_seconds": round(build_seconds, 2),
        "index_bytes": index_bytes,
        "table_total_bytes": table_bytes,
        "maintenance_work_mem_mb": work_mem_mb,
        "build_backend_peak_rss_mb": peak_rss_mb,
    }
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO bench_search_build (id, fingerprint, info)"
                " VALUES (1, CAST(:f AS jsonb), CAST(:i AS jsonb))"
            ),
            {"f": json.dumps(corpus.fingerprint()), "i": json.dumps(info)},
        )
    return {**info, "reused": False}
