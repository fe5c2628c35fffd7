"""Embedding throughput.

1. Titan through boto3 against ``devtools.fake_titan`` in its own process answering after
   100 ms per call: 40 chunks one call at a time vs with bounded concurrency (the configured
   ``EMBEDDING_MAX_CONCURRENCY``, default 8, plus other levels for the curve). Goal: the
   concurrent time is at most 1/6 of the sequential time. One extra row shows the cost of a
   small quota (the fake throttles beyond 4 calls in flight; retries with backoff absorb it).
2. The offline ``local-hash-v1`` embedder: chunks per second on one core, on ~300-token chunks
   of the sample job descriptions (English and Korean), with warm and cold feature caches.
3. The chunker: chunks and characters per second (context for the numbers above).

    python -m bench.bench_embeddings [--quick]

Prints a table and writes bench/results/embeddings.json; ``run()`` returns the same dict.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.output import RESULTS_DIR, write_json

REPO_ROOT = Path(__file__).resolve().parents[1]
_LAYER = REPO_ROOT / "layers" / "shared"
if str(_LAYER) not in sys.path:
    sys.path.insert(0, str(_LAYER))

from devtools.fake_titan import serve_in_subprocess  # noqa: E402
from devtools.layer_env import layer_environment  # noqa: E402
from flex_shared.chunking import chunk_text, estimate_tokens  # noqa: E402
from flex_shared.config import load_settings  # noqa: E402
from flex_shared.embeddings import HashEmbedder, RetryPolicy, TitanEmbedder  # noqa: E402

RESULT_FILE = RESULTS_DIR / "embeddings.json"
SAMPLES_DIR = REPO_ROOT / "devtools" / "samples"
FAKE_LATENCY_SECONDS = 0.1
CHUNKS_PER_DOCUMENT = 40
GOAL_RATIO = 1 / 6


@contextlib.contextmanager
def _one_core() -> Iterator[int | None]:
    """Pin this process to one CPU for the measurement (where the OS allows it)."""
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    original = os.sched_getaffinity(0)
    core = min(original)
    os.sched_setaffinity(0, {core})
    try:
        yield core
    finally:
        os.sched_setaffinity(0, original)


def sample_texts() -> dict[str, str]:
    paths = sorted([*SAMPLES_DIR.glob("*.md"), *SAMPLES_DIR.glob("*.txt")])
    return {path.name: path.read_text(encoding="utf-8") for path in paths}


def corpus_chunks(documents: int, language: str | None = None, seed: int = 7) -> list[str]:
    """Default-size chunks of synthetic job descriptions: the samples' lines reshuffled (so
    chunks differ and fill up to the target); ``language`` "en"/"ko" picks samples by suffix."""
    lines = [
        line.strip()
        for name, text in sample_texts().items()
        if language is None or name.removesuffix(".md").removesuffix(".txt").endswith(language)
        for line in text.splitlines()
        if line.strip()
    ]
    shuffler = random.Random(seed)
    chunks: list[str] = []
    for _ in range(documents):
        shuffler.shuffle(lines)
        chunks.extend(chunk_text("\n".join(lines)))
    return chunks


def forty_chunks() -> list[str]:
    """A 40-chunk job description's chunks (the ingest case the goal talks about)."""
    chunks = corpus_chunks(documents=10)
    return chunks[:CHUNKS_PER_DOCUMENT]


def _timed_batch(embedder: TitanEmbedder, texts: list[str]) -> float:
    started = time.perf_counter()
    vectors = embedder.embed_documents(texts, deadline=time.monotonic() + 120)
    elapsed = time.perf_counter() - started
    assert len(vectors) == len(texts)
    return elapsed


def bench_titan(quick: bool) -> dict[str, Any]:
    texts = forty_chunks()
    configured = load_settings(
        {"DATABASE_URL": "postgresql://unused@localhost/unused", "EMBEDDING_PROVIDER": "titan"}
        | {k: v for k, v in os.environ.items() if k == "EMBEDDING_MAX_CONCURRENCY"}
    ).embedding_max_concurrency
    levels = sorted({1, 4, configured, 16})
    repeats = 2 if quick else 5
    rows: list[dict[str, Any]] = []
    with (
        serve_in_subprocess(latency=FAKE_LATENCY_SECONDS) as endpoint,
        layer_environment(AWS_ENDPOINT_URL_BEDROCK_RUNTIME=endpoint),
    ):
        client = TitanEmbedder(max_concurrency=max(levels)).client  # one client, as in Lambda
        for level in levels:
            embedder = TitanEmbedder(max_concurrency=level, client=client)
            embedder.embed_query("warm up the connection pool")
            runs = [_timed_batch(embedder, texts) for _ in range(1 if level == 1 else repeats)]
            rows.append(
                {
                    "max_concurrency": level,
                    "runs": len(runs),
                    "median_seconds": statistics.median(runs),
                    "min_seconds": min(runs),
                    "calls": embedder.usage.calls,
                    "retries": embedder.usage.retries,
                }
            )
    sequential = next(row for row in rows if row["max_concurrency"] == 1)["median_seconds"]
    for row in rows:
        row["ratio_to_sequential"] = row["median_seconds"] / sequential

    with (
        serve_in_subprocess(latency=FAKE_LATENCY_SECONDS, max_concurrent=4) as endpoint,
        layer_environment(AWS_ENDPOINT_URL_BEDROCK_RUNTIME=endpoint),
    ):
        embedder = TitanEmbedder(
            max_concurrency=configured, retry=RetryPolicy(max_attempts=10, base_delay=0.1)
        )
        embedder.embed_query("warm up")
        throttled_seconds = _timed_batch(embedder, texts)
        throttled = {
            "quota_in_flight": 4,
            "max_concurrency": configured,
            "seconds": throttled_seconds,
            "calls": embedder.usage.calls - 1,
            "retries": embedder.usage.retries,
        }

    chosen = next(row for row in rows if row["max_concurrency"] == configured)
    return {
        "fake_latency_seconds": FAKE_LATENCY_SECONDS,
        "chunks": len(texts),
        "configured_max_concurrency": configured,
        "sequential_seconds": sequential,
        "concurrent_seconds": chosen["median_seconds"],
        "ratio": chosen["ratio_to_sequential"],
        "goal_ratio": GOAL_RATIO,
        "goal_met": chosen["ratio_to_sequential"] <= GOAL_RATIO,
        "levels": rows,
        "throttled": throttled,
    }


def bench_local(quick: bool) -> dict[str, Any]:
    chunks = corpus_chunks(documents=40 if quick else 200)
    with _one_core() as core:
        warm = HashEmbedder()
        warm.embed_documents(chunks[:50])  # a container that has embedded before
        started = time.perf_counter()
        warm.embed_documents(chunks)
        warm_seconds = time.perf_counter() - started

        cold_sample = chunks[:200]
        started = time.perf_counter()
        for chunk in cold_sample:  # a new embedder per chunk: every feature hashed afresh
            HashEmbedder().embed_query(chunk)
        cold_seconds = time.perf_counter() - started

        per_language = {}
        for name, language in (("english", "en"), ("korean", "ko")):
            subset = corpus_chunks(documents=20 if quick else 100, language=language)
            warm.embed_documents(subset[:20])
            started = time.perf_counter()
            warm.embed_documents(subset)
            per_language[name] = {
                "chunks": len(subset),
                "mean_chunk_chars": statistics.mean(map(len, subset)),
                "chunks_per_second": len(subset) / (time.perf_counter() - started),
            }
    return {
        "cpu_core": core,
        "chunks": len(chunks),
        "mean_chunk_chars": statistics.mean(map(len, chunks)),
        "mean_chunk_estimated_tokens": statistics.mean(map(estimate_tokens, chunks)),
        "chunks_per_second": len(chunks) / warm_seconds,
        "cold_cache_chunks_per_second": len(cold_sample) / cold_seconds,
        "per_language": per_language,
    }


def bench_chunker(quick: bool) -> dict[str, Any]:
    texts = list(sample_texts().values())
    documents = [texts[i % len(texts)] for i in range(60 if quick else 300)]
    started = time.perf_counter()
    produced = sum(len(chunk_text(document)) for document in documents)
    seconds = time.perf_counter() - started
    characters = sum(map(len, documents))
    return {
        "documents": len(documents),
        "chunks": produced,
        "documents_per_second": len(documents) / seconds,
        "chunks_per_second": produced / seconds,
        "characters_per_second": characters / seconds,
    }


def run(quick: bool = False) -> dict[str, Any]:
    """Run every measurement; return the results (also what ``main`` writes as JSON)."""
    with layer_environment(
        AWS_ACCESS_KEY_ID=os.environ.get("AWS_ACCESS_KEY_ID", "bench"),
        AWS_SECRET_ACCESS_KEY=os.environ.get("AWS_SECRET_ACCESS_KEY", "bench"),
        AWS_REGION=os.environ.get("AWS_REGION", "us-east-1"),
    ):
        titan = bench_titan(quick)
    return {
        "benchmark": "embeddings",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "quick": quick,
        "titan_fake": titan,
        "local_embedder": bench_local(quick),
        "chunker": bench_chunker(quick),
    }


def print_table(result: dict[str, Any]) -> None:
    titan = result["titan_fake"]
    print(
        f"Titan via boto3 -> fake Bedrock ({titan['fake_latency_seconds'] * 1000:.0f} ms/call),"
        f" {titan['chunks']} chunks"
    )
    print(f"{'concurrency':>12} {'median s':>9} {'vs sequential':>14} {'retries':>8}")
    for row in titan["levels"]:
        print(
            f"{row['max_concurrency']:>12} {row['median_seconds']:>9.3f}"
            f" {row['ratio_to_sequential']:>14.3f} {row['retries']:>8}"
        )
    verdict = "MET" if titan["goal_met"] else "NOT MET"
    print(
        f"goal: concurrency {titan['configured_max_concurrency']} <= 1/6 of sequential"
        f" -> {titan['ratio']:.3f} ({verdict})"
    )
    throttled = titan["throttled"]
    print(
        f"quota of {throttled['quota_in_flight']} in flight, concurrency"
        f" {throttled['max_concurrency']}: {throttled['seconds']:.3f} s,"
        f" {throttled['retries']} retries absorbed"
    )
    local = result["local_embedder"]
    print()
    print(
        f"local-hash-v1 on one core (cpu {local['cpu_core']}), {local['chunks']} chunks of"
        f" ~{local['mean_chunk_estimated_tokens']:.0f} est. tokens /"
        f" {local['mean_chunk_chars']:.0f} chars"
    )
    print(f"{'case':>22} {'chunks/s':>10}")
    print(f"{'warm feature cache':>22} {local['chunks_per_second']:>10.0f}")
    print(f"{'cold feature cache':>22} {local['cold_cache_chunks_per_second']:>10.0f}")
    for name, row in local["per_language"].items():
        label = f"{name} ({row['mean_chunk_chars']:.0f} chars)"
        print(f"{label:>22} {row['chunks_per_second']:>10.0f}")
    chunker = result["chunker"]
    print()
    print(
        f"chunker: {chunker['documents_per_second']:.0f} documents/s,"
        f" {chunker['chunks_per_second']:.0f} chunks/s,"
        f" {chunker['characters_per_second'] / 1e6:.2f} M chars/s"
    )
    print(f"load average during the run: {result['load_average']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_embeddings")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    print_table(result)
    write_json(RESULT_FILE, result)
    print(f"\nwrote {RESULT_FILE.relative_to(REPO_ROOT)}")
    return 0 if result["titan_fake"]["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
