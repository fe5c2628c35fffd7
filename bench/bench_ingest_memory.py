"""Hostile uploads: peak memory of a fresh process ingesting each one through the real handler.

Every document of ``tests/hostile_documents.py`` is put into moto's S3 server next to a normal
job description, one S3 event carries both, and a new interpreter runs the ingestion handler on
it as deployed (Titan, here its loopback stand-in) against the benchmark database
(``tests/ingest_memory.py``). Reported per document: the process's peak resident memory
(``VmHWM``) and what it had after importing the function, the invocation's time, what became of
the hostile record (rejected and why, written and how many chunks, or an exception that makes
Lambda retry the whole event) and whether the normal record of the same event still landed. A
first run with the normal document alone is the baseline.

    python -m bench.bench_ingest_memory                       # this checkout
    python -m bench.bench_ingest_memory --code-root OTHER     # the functions of another checkout
    python -m bench.bench_ingest_memory --only pdf_flate_bomb,txt_single_line

Writes bench/results/ingest_memory.json (``--output`` to change).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench import bench_db
from bench.output import RESULTS_DIR, write_json
from tests.hostile_documents import HOSTILE_DOCUMENTS, HostileDocument
from tests.ingest_memory import (
    GOOD_DOCUMENT,
    GOOD_KEY,
    REPO_ROOT,
    LocalServices,
    ingest_in_fresh_process,
    local_services,
)

DATABASE = "bench_ingest_memory"
FUNCTION_TIMEOUT_SECONDS = 300  # the deployed function's: Lambda would stop it there
TABLES = "interview_results, interview_sessions, questions, job_chunks, jobs"


def _stored_chunks(url: str, key: str) -> int | None:
    """Chunks stored for ``key``; None when no job was written for it."""
    engine = bench_db.engine_for(url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT j.id, count(c.id) FROM jobs j LEFT JOIN job_chunks c ON c.job_id = j.id"
                    " WHERE j.source_key = :key GROUP BY j.id"
                ),
                {"key": key},
            ).first()
    finally:
        engine.dispose()
    return None if row is None else int(row[1])


def _truncate(url: str) -> None:
    engine = bench_db.engine_for(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


def _measure(
    url: str,
    services: LocalServices,
    code_root: Path,
    document: HostileDocument | None,
    timeout_seconds: float,
) -> dict[str, Any]:
    _truncate(url)
    records = []
    row: dict[str, Any] = {"name": "baseline (normal document only)", "upload_bytes": None}
    if document is not None:
        body = document.build()
        row = {"name": document.name, "what": document.what, "upload_bytes": len(body)}
        records.append(services.bucket.put(document.key, body))
        del body
    records.append(services.bucket.put(GOOD_KEY, GOOD_DOCUMENT))
    try:
        result = ingest_in_fresh_process(
            records,
            services.child_environment(url),
            code_root=code_root,
            timeout_seconds=timeout_seconds,
        )
    except subprocess.TimeoutExpired:
        return {**row, "error": f"not finished after {timeout_seconds:g} s (killed)"}
    except RuntimeError as exc:  # e.g. killed by the kernel for want of memory
        return {**row, "error": str(exc)[:2000]}
    row.update(
        peak_mib=result.peak_mib,
        import_peak_mib=result.import_peak_mib,
        seconds=result.seconds,
        outcomes=result.outcomes,
        raised=result.raised,
        normal_document_landed=_stored_chunks(url, GOOD_KEY) is not None,
    )
    if document is not None:
        row.update(
            reason=result.reason_for(document.key),
            detail=next((r["detail"] for r in result.rejections if r["key"] == document.key), None),
            chunks_written=_stored_chunks(url, document.key),
        )
    return row


def run(
    code_root: Path = REPO_ROOT,
    only: Sequence[str] = (),
    timeout_seconds: float = FUNCTION_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    documents = [d for d in HOSTILE_DOCUMENTS if not only or d.name in only]
    url = bench_db.ensure_database(DATABASE)
    rows = []
    with local_services() as services:
        for document in [None, *documents]:
            row = _measure(url, services, code_root, document, timeout_seconds)
            print(_line(row), flush=True)
            rows.append(row)
    _truncate(url)
    return {
        "code_root": str(code_root) if code_root != REPO_ROOT else "this checkout",
        "function_memory_mib": 1024,
        "timeout_seconds": timeout_seconds,
        "documents": rows,
    }


def _line(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"{row['name']:<34} ERROR {row['error'][:300]}"
    if row.get("raised"):
        became = f"raised {row['raised'][:80]}"
    elif row.get("reason"):
        became = f"rejected {row['reason']}: {(row.get('detail') or '')[:70]}"
    elif row.get("chunks_written") is not None:
        became = f"written, {row['chunks_written']} chunks"
    else:
        became = ", ".join(row.get("outcomes") or [])
    return (
        f"{row['name']:<34} peak {row['peak_mib']:>7.1f} MiB (after import"
        f" {row['import_peak_mib']:>6.1f}) {row['seconds']:>7.2f} s  {became}"
        f"{'' if row['normal_document_landed'] else '  [normal record LOST]'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code-root", type=Path, default=REPO_ROOT)
    parser.add_argument("--only", default="", help="comma-separated document names")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "ingest_memory.json")
    parser.add_argument(
        "--timeout", type=float, default=FUNCTION_TIMEOUT_SECONDS, help="seconds per document"
    )
    options = parser.parse_args(argv)
    only = [name for name in options.only.split(",") if name]
    result = run(options.code_root.resolve(), only, options.timeout)
    print(f"wrote {write_json(options.output, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
