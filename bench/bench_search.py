"""Search benchmark: recall@10 per ef_search, handler vs bare SQL latency, selective filters.

    python -m bench.bench_search                 # 100k chunks (built once, then reused)
    python -m bench.bench_search --rows 1000000  # 1M chunks (~12 GB, long build)

Corpus: synthetic clustered unit-norm 1024-d vectors (bench/bench_search_data.py), COPY-loaded
into a dedicated database (bench/bench_db.py), HNSW built as the migration defines it.
Query embedding is excluded from the latency comparison: the 200 query vectors are injected
into the handler's per-container cache (a warm container's repeated query), and the embedder's
own cost is measured separately. Writes bench/results/search.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from pgvector import Vector
from sqlalchemy import text

from bench import bench_db
from bench.bench_quality import load_queries
from bench.bench_search_data import FILTER_TIERS, Corpus, build, exact_top_k
from bench.output import write_json
from devtools.apigw import rest_event
from devtools.functions import load_function
from devtools.lambda_context import FakeLambdaContext
from devtools.layer_env import layer_configured

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULT_FILE = bench_db.RESULTS_DIR / "search.json"
EF_VALUES = (40, 64, 100, 150, 200)
TOP_K = 10
RECALL_TARGET = 0.95


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)], 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
    }


def _bare_transaction(raw: Any, statements: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
    """The handler's SQL on the DBAPI connection: BEGIN, SET LOCALs, query, COMMIT."""
    cursor = raw.cursor()
    rows: list[Any] = []
    for sql, params in statements:
        cursor.execute(sql, params)
        rows = cursor.fetchall() if cursor.description else []
    raw.commit()
    return rows


def _to_format(statement: Any) -> tuple[str, tuple[Any, ...]]:
    """A named-parameter ``Statement`` as pg8000's format-style SQL and positional params."""
    import re

    names: list[str] = []

    def replace(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return "%s"

    sql = re.sub(r"(?<!:):([a-z_]+)", replace, statement.sql)
    return sql, tuple(statement.params[name] for name in names)


def run(
    rows: int = 100_000,
    *,
    queries: int = 200,
    ef_values: tuple[int, ...] = EF_VALUES,
    rebuild: bool = False,
    log: Any = print,
) -> dict[str, Any]:
    """Build (or reuse) the corpus and measure; returns the results (also written as JSON)."""
    corpus = Corpus(rows=rows)
    url = bench_db.ensure_database(f"bench_search_{rows}", recreate=rebuild)
    build_engine = bench_db.engine_for(url)
    build_info = build(build_engine, corpus, log=log)
    build_engine.dispose()

    query_vectors = corpus.queries(queries)
    log(f"exact ground truth for {queries} queries ...")
    truth = exact_top_k(corpus, query_vectors, TOP_K)
    literals = [Vector(vector).to_text() for vector in query_vectors]
    texts = [f"benchmark query {i}" for i in range(queries)]

    results: dict[str, Any] = {
        "rows": rows,
        "dimensions": corpus.dimensions,
        "queries": queries,
        "top_k": TOP_K,
        "build": build_info,
    }

    os.environ.setdefault("EMBEDDING_PROVIDER", "local")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "bench")
    with layer_configured(url):
        from sqlalchemy.orm import Session

        from flex_shared import config, db

        app = load_function("search")
        store, embedding = (
            sys.modules["flex_search.store"],
            sys.modules["flex_search.query_embedding"],
        )
        engine = db.get_engine()
        with engine.connect() as connection:
            results["pgvector"] = connection.execute(
                text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            ).scalar_one()
            results["postgres"] = connection.execute(text("SHOW server_version")).scalar_one()

        # 1. recall@10 and bare latency of the index query per ef_search
        sweep = []
        log("warming up (index and heap pages into memory) ...")
        for literal in literals:
            statement = store.index_statement(literal, "cosine", TOP_K)
            with Session(engine) as session, session.begin():
                db.set_local(session, store.index_settings(max(ef_values)))
                session.execute(text(statement.sql), statement.params).all()
        for ef in ef_values:
            recalls, latencies = [], []
            for literal, expected in zip(literals, truth, strict=True):
                statement = store.index_statement(literal, "cosine", TOP_K)
                started = time.perf_counter()
                with Session(engine) as session, session.begin():
                    db.set_local(session, store.index_settings(ef))
                    found = [
                        row[0] for row in session.execute(text(statement.sql), statement.params)
                    ]
                latencies.append((time.perf_counter() - started) * 1000)
                recalls.append(len(set(found) & set(expected)) / TOP_K)
            row = {"ef_search": ef, "recall_at_10": round(statistics.fmean(recalls), 4)}
            row.update(_percentiles(latencies))
            sweep.append(row)
            log(f"  ef_search={ef:4d}  recall@10={row['recall_at_10']:.4f}  p50={row['p50_ms']} ms")
        results["ef_sweep"] = sweep
        good = [row["ef_search"] for row in sweep if row["recall_at_10"] >= RECALL_TARGET]
        chosen = min(good) if good else max(ef_values)
        results["chosen_ef_search"] = chosen
        results["recall_target_reached"] = bool(good)
        results["configured_default_ef_search"] = config.DEFAULT_HNSW_EF_SEARCH

        # 2. full handler (event in, JSON out) vs the bare SQL, same connection, same ef_search
        os.environ["HNSW_EF_SEARCH"] = str(config.DEFAULT_HNSW_EF_SEARCH)
        config.reset_settings()
        ef = config.get_settings().hnsw_ef_search
        embedding.QUERY_CACHE.clear()
        for query_text, vector in zip(texts, query_vectors, strict=True):
            embedding.QUERY_CACHE.put(query_text, [float(v) for v in vector])
        context = FakeLambdaContext(function_name="search")
        handler_ms: list[float] = []
        bare_ms: list[float] = []
        handler_recall: list[float] = []
        for round_number in range(2):  # the first round warms caches and is discarded
            handler_ms.clear()
            bare_ms.clear()
            handler_recall.clear()
            for i, (query_text, literal) in enumerate(zip(texts, literals, strict=True)):
                statement = store.index_statement(literal, "cosine", TOP_K)
                settings = store.index_settings(ef)
                bare = [
                    (
                        "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in settings),
                        tuple(str(part) for item in settings.items() for part in item),
                    ),
                    _to_format(statement),
                ]
                event = rest_event("POST", "/search", {"query": query_text, "top_k": TOP_K})
                order = ("bare", "handler") if i % 2 == 0 else ("handler", "bare")
                for which in order:
                    if which == "bare":
                        raw = engine.raw_connection()
                        try:
                            started = time.perf_counter()
                            _bare_transaction(raw, bare)
                            bare_ms.append((time.perf_counter() - started) * 1000)
                        finally:
                            raw.close()
                    else:
                        started = time.perf_counter()
                        response = app.lambda_handler(event, context)
                        handler_ms.append((time.perf_counter() - started) * 1000)
                        answer = json.loads(response["body"])
                        assert response["statusCode"] == 200, answer
                        ids = [result["chunk_id"] for result in answer["results"]]
                        assert len(ids) == TOP_K
                        handler_recall.append(len(set(ids) & set(truth[i])) / TOP_K)
            log(f"  handler vs bare SQL, round {round_number + 1} done")
        handler = _percentiles(handler_ms)
        bare_stats = _percentiles(bare_ms)
        results["latency"] = {
            "ef_search": ef,
            "bare_sql": bare_stats,
            "handler": handler,
            "ratio_p50": round(handler["p50_ms"] / bare_stats["p50_ms"], 3),
            "ratio_p95": round(handler["p95_ms"] / bare_stats["p95_ms"], 3),
            "handler_recall_at_10": round(statistics.fmean(handler_recall), 4),
        }

        # 3. query embedding, measured on its own (local embedder: Titan is a network call)
        embedder_module = sys.modules["flex_shared.embeddings"]
        embedder = embedder_module.get_embedder()
        embed_ms = []
        sample_queries = [
            "senior backend engineer Python PostgreSQL",
            "데이터 엔지니어 Spark Airflow 파이프라인",
            "product designer Figma user research",
            "쿠버네티스 운영 경험이 있는 백엔드 개발자",
        ]
        for i in range(queries):
            started = time.perf_counter()
            vector = embedder.embed_query(f"{sample_queries[i % 4]} {i}")
            db.vector_literal(vector)
            embed_ms.append((time.perf_counter() - started) * 1000)
        results["query_embedding"] = {"provider": embedder.model_id, **_percentiles(embed_ms)}

        # 4. filters keeping 30%, 1% and 0.1% of the rows, through the handler
        results["filters"] = _filtered(app, store, engine, corpus, texts, literals, ef, context)
        # 5. the strategy's thresholds: each branch forced, per filter size
        results["strategies"] = _strategy_sweep(store, engine, corpus, literals[:40], ef, log)

        # 6. the three modes through the handler, on the chunks' texts (keyword index real)
        results["modes"] = _modes(app, engine, embedding, store, corpus, log)
        embedding.QUERY_CACHE.clear()

    write_json(RESULT_FILE, results)
    return results


def _ids_exact(session: Any, company: int, literal: str) -> list[int]:
    rows = session.execute(
        text(
            "SELECT id FROM job_chunks WHERE company_id = :c"
            " ORDER BY (embedding <=> CAST(:q AS vector)) + 0, id LIMIT :k"
        ),
        {"c": company, "q": literal, "k": TOP_K},
    ).all()
    return [row[0] for row in rows]


def _filtered(
    app: Any,
    store: Any,
    engine: Any,
    corpus: Corpus,
    texts: list[str],
    literals: list[str],
    ef: int,
    context: Any,
) -> dict[str, Any]:
    """Per filter size: the handler's latency, recall@10 against the exact answer, whether
    top_k always came back, and which strategy answered."""
    from sqlalchemy.orm import Session

    measured: dict[str, Any] = {}
    for tier, companies in FILTER_TIERS.items():
        latencies: list[float] = []
        counts: list[int] = []
        recalls: list[float] = []
        strategies: Counter[str] = Counter()
        for i, (query_text, literal) in enumerate(zip(texts, literals, strict=True)):
            company = companies[i % len(companies)]
            event = rest_event(
                "POST", "/search", {"query": query_text, "top_k": TOP_K, "company_id": company}
            )
            started = time.perf_counter()
            response = app.lambda_handler(event, context)
            latencies.append((time.perf_counter() - started) * 1000)
            answer = json.loads(response["body"])
            assert response["statusCode"] == 200, answer
            ids = [result["chunk_id"] for result in answer["results"]]
            assert {result["company_id"] for result in answer["results"]} == {company}
            counts.append(len(ids))
            with Session(engine) as session, session.begin():
                outcome = store.search_chunks(
                    session,
                    literal,
                    metric="cosine",
                    top_k=TOP_K,
                    chunk_filter=store.ChunkFilter(company_id=company),
                    ef_search=ef,
                )
                strategies[outcome.strategy] += 1
                exact = _ids_exact(session, company, literal)
            recalls.append(len(set(ids) & set(exact)) / TOP_K)
        measured[tier] = {
            "matching_rows": corpus.rows * {"30%": 300, "1%": 10, "0.1%": 1}[tier] // 1000,
            "always_top_k": all(count == TOP_K for count in counts),
            "min_results": min(counts),
            "recall_at_10": round(statistics.fmean(recalls), 4),
            "strategies": dict(strategies),
            **_percentiles(latencies),
        }
    return measured


def _strategy_sweep(
    store: Any, engine: Any, corpus: Corpus, literals: list[str], ef: int, log: Any
) -> dict[str, Any]:
    """Each branch of the filtered statement forced, per filter size: the exact scan, and the
    iterative index scan in ``relaxed_order`` (re-sorted) and ``strict_order``. Where their
    latencies cross sets ``flex_search.store.EXACT_SCAN_COST_RATIO``; the recalls choose the order
    mode."""
    from sqlalchemy.orm import Session

    from flex_shared import db

    variants = {
        "exact": (10**9, "relaxed_order"),
        "index_relaxed": (0, "relaxed_order"),
        "index_strict": (0, "strict_order"),
    }
    sweep: dict[str, Any] = {}
    for tier, companies in FILTER_TIERS.items():
        row: dict[str, Any] = {}
        for name, (exact_below, order) in variants.items():
            latencies: list[float] = []
            recalls: list[float] = []
            short = 0
            for i, literal in enumerate(literals):
                company = companies[i % len(companies)]
                chunk_filter = store.ChunkFilter(company_id=company)
                statement = store.filtered_statement(
                    literal, "cosine", TOP_K, chunk_filter, exact_below
                )
                settings = {**store.index_settings(ef), "hnsw.iterative_scan": order}
                with Session(engine) as session:
                    started = time.perf_counter()
                    with session.begin():
                        db.set_local(session, settings)
                        rows = session.execute(text(statement.sql), statement.params).all()
                    latencies.append((time.perf_counter() - started) * 1000)
                    with session.begin():
                        exact = _ids_exact(session, company, literal)
                found = [row.id for row in rows if row.id is not None]
                short += len(found) < TOP_K
                recalls.append(len(set(found) & set(exact)) / TOP_K)
            row[name] = {
                "recall_at_10": round(statistics.fmean(recalls), 4),
                "short_answers": short,
                **_percentiles(latencies),
            }
        sweep[tier] = row
        log(
            f"  {tier:>5} filter: "
            + ", ".join(
                f"{name} p50 {stats['p50_ms']} ms recall {stats['recall_at_10']}"
                for name, stats in row.items()
            )
        )
    return sweep


MODES = ("vector", "keyword", "hybrid")
MODE_PASSES = 5  # the first pass warms caches and is discarded


def _modes(
    app: Any, engine: Any, embedding: Any, store: Any, corpus: Corpus, log: Any
) -> dict[str, Any]:
    """p50/p95 of each mode through the handler, for the evaluation set's queries (exact
    skills, Korean, English, paraphrases...) against the corpus's job-ad texts. Each query text
    gets a corpus-like vector in the handler's cache (a warm container's repeated query): the
    query embedding is excluded, as above."""
    from sqlalchemy import text

    queries = [query["query"] for query in load_queries()]
    embedding.QUERY_CACHE.clear()
    for query_text, vector in zip(queries, corpus.queries(len(queries)), strict=True):
        embedding.QUERY_CACHE.put(query_text, [float(v) for v in vector])
    context = FakeLambdaContext(function_name="search")
    latencies: dict[str, list[float]] = {mode: [] for mode in MODES}
    counts: dict[str, list[int]] = {mode: [] for mode in MODES}
    for round_number in range(MODE_PASSES):
        for i, query_text in enumerate(queries):
            rotation = i % len(MODES)  # no mode always runs first
            for mode in MODES[rotation:] + MODES[:rotation]:
                event = rest_event(
                    "POST", "/search", {"query": query_text, "top_k": TOP_K, "mode": mode}
                )
                started = time.perf_counter()
                response = app.lambda_handler(event, context)
                elapsed = (time.perf_counter() - started) * 1000
                assert response["statusCode"] == 200, response["body"]
                if round_number > 0:
                    latencies[mode].append(elapsed)
                    counts[mode].append(len(json.loads(response["body"])["results"]))
        log(f"  modes, pass {round_number + 1} of {MODE_PASSES} done")

    # How many chunks each query's words match: what the keyword side ranks.
    matched: list[int] = []
    with engine.connect() as connection:
        for query_text in queries:
            matched.append(
                connection.execute(
                    text(
                        "SELECT count(*) FROM job_chunks"
                        " WHERE search_vector @@ job_chunk_search_query(:q, true)"
                    ),
                    {"q": query_text},
                ).scalar_one()
            )
        statement = store.keyword_statement(
            "Kotlin",
            "[" + ",".join(["0"] * 1023 + ["1"]) + "]",
            "cosine",
            TOP_K,
            store.ChunkFilter(),
            match_all=True,
            min_similarity=None,
        )
        plan = connection.execute(
            text("EXPLAIN (FORMAT JSON) " + statement.sql), statement.params
        ).scalar_one()
    plan_text = json.dumps(plan)
    stats = {mode: _percentiles(latencies[mode]) for mode in MODES}
    return {
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "queries": len(queries),
        "samples_per_mode": len(latencies["vector"]),
        "top_k": TOP_K,
        **stats,
        "mean_results": {mode: round(statistics.fmean(counts[mode]), 2) for mode in MODES},
        "keyword_matching_chunks": {
            "median": statistics.median(matched),
            "max": max(matched),
            "share_of_queries_with_matches": round(sum(1 for m in matched if m) / len(matched), 3),
        },
        "keyword_plan_uses_gin_index": "ix_job_chunks_search_vector" in plan_text,
        "hybrid_p95_over_vector_p95": round(
            stats["hybrid"]["p95_ms"] / stats["vector"]["p95_ms"], 3
        ),
    }


def print_table(results: dict[str, Any]) -> None:
    build_info = results["build"]
    print()
    print(
        f"search benchmark: {results['rows']:,} chunks x {results['dimensions']}-d,"
        f" {results['queries']} queries, top_k={results['top_k']},"
        f" PostgreSQL {results['postgres']}, pgvector {results['pgvector']}"
    )
    reused = " (reused from an earlier run)" if build_info.get("reused") else ""
    print(
        f"HNSW build (m=16, ef_construction=64): {build_info['index_build_seconds']} s{reused},"
        f" index {build_info['index_bytes'] / 2**20:.0f} MiB,"
        f" COPY load {build_info['load_seconds']} s,"
        f" building backend's peak RSS {build_info.get('build_backend_peak_rss_mb')} MiB"
    )
    print()
    print(f"{'ef_search':>9} | {'recall@10':>9} | {'p50 ms':>7} | {'p95 ms':>7}")
    print("-" * 43)
    for row in results["ef_sweep"]:
        print(
            f"{row['ef_search']:>9} | {row['recall_at_10']:>9.4f} | {row['p50_ms']:>7.2f}"
            f" | {row['p95_ms']:>7.2f}"
        )
    if results.get("recall_target_reached", True):
        reached = (
            f"smallest ef_search with recall@10 >= {RECALL_TARGET}: {results['chosen_ef_search']}"
        )
    else:
        reached = f"no ef_search of the sweep reaches recall@10 {RECALL_TARGET}"
    print(f"{reached} (configured default: {results['configured_default_ef_search']})")
    latency = results["latency"]
    print()
    print(f"{'ef_search=' + str(latency['ef_search']):<28} | {'p50 ms':>7} | {'p95 ms':>7}")
    print("-" * 48)
    for name, key in (("bare SQL (same connection)", "bare_sql"), ("full handler", "handler")):
        stats = latency[key]
        print(f"{name:<28} | {stats['p50_ms']:>7.2f} | {stats['p95_ms']:>7.2f}")
    print(f"{'handler / bare':<28} | {latency['ratio_p50']:>7.2f} | {latency['ratio_p95']:>7.2f}")
    embed = results["query_embedding"]
    print(
        f"{'query embedding (' + embed['provider'] + ')':<28} | {embed['p50_ms']:>7.2f}"
        f" | {embed['p95_ms']:>7.2f}   (excluded above)"
    )
    print()
    print(
        f"{'filter':>6} | {'rows':>6} | {'top_k always':>12} | {'recall@10':>9} | {'p50 ms':>7}"
        f" | {'p95 ms':>7} | plans"
    )
    print("-" * 80)
    for tier, flt in results["filters"].items():
        print(
            f"{tier:>6} | {flt['matching_rows']:>6} | {flt['always_top_k']!s:>12}"
            f" | {flt['recall_at_10']:>9.4f} | {flt['p50_ms']:>7.2f} | {flt['p95_ms']:>7.2f}"
            f" | {flt['strategies']}"
        )
    print()
    print("each branch forced (40 queries): p50 ms / recall@10 / short answers")
    for tier, row in results["strategies"].items():
        cells = "  ".join(
            f"{name} {stats['p50_ms']:.1f} / {stats['recall_at_10']:.3f} / {stats['short_answers']}"
            for name, stats in row.items()
        )
        print(f"{tier:>6}: {cells}")
    modes = results["modes"]
    print()
    print(
        f"modes through the handler: {modes['queries']} evaluation queries x"
        f" {modes['samples_per_mode'] // modes['queries']} passes, top_k={modes['top_k']}"
    )
    print(f"{'mode':<10} | {'p50 ms':>7} | {'p95 ms':>7} | {'results':>7}")
    print("-" * 41)
    for mode in MODES:
        print(
            f"{mode:<10} | {modes[mode]['p50_ms']:>7.2f} | {modes[mode]['p95_ms']:>7.2f}"
            f" | {modes['mean_results'][mode]:>7.2f}"
        )
    matching = modes["keyword_matching_chunks"]
    print(
        f"hybrid p95 / vector p95: {modes['hybrid_p95_over_vector_p95']:.2f}x (goal <= 2x);"
        f" chunks matching a query's words: median {matching['median']}, max {matching['max']};"
        f" GIN index used: {modes['keyword_plan_uses_gin_index']}"
    )
    print(f"\nwritten to {RESULT_FILE.relative_to(REPO_ROOT)}")


def run_modes_only(rows: int, log: Any = print) -> dict[str, Any]:
    """Section 6 alone, on the built corpus; replaces ``modes`` in the stored results."""
    corpus = Corpus(rows=rows)
    url = bench_db.ensure_database(f"bench_search_{rows}")
    build_engine = bench_db.engine_for(url)
    build(build_engine, corpus, log=log)
    build_engine.dispose()
    os.environ.setdefault("EMBEDDING_PROVIDER", "local")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "bench")
    with layer_configured(url):
        from flex_shared import db

        app = load_function("search")
        store, embedding = (
            sys.modules["flex_search.store"],
            sys.modules["flex_search.query_embedding"],
        )
        modes = _modes(app, db.get_engine(), embedding, store, corpus, log)
        embedding.QUERY_CACHE.clear()
    results: dict[str, Any] = json.loads(RESULT_FILE.read_text()) if RESULT_FILE.exists() else {}
    if results.get("rows") != rows:
        results = {"rows": rows}
    results["modes"] = modes
    write_json(RESULT_FILE, results)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rebuild", action="store_true", help="reload and rebuild the index")
    parser.add_argument(
        "--modes-only", action="store_true", help="only the search modes' latency (section 6)"
    )
    args = parser.parse_args(argv)
    if args.modes_only:
        results = run_modes_only(args.rows)
        print(json.dumps(results["modes"], indent=2))
        return
    print_table(run(args.rows, queries=args.queries, rebuild=args.rebuild))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
