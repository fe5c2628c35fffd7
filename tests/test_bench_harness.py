"""The benchmark harness's own logic: import-time attribution, cold-start summaries, the
events it patches, the report table; and one real cold start in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest

from bench import bench_coldstart, bench_size, run_all
from devtools import sam_build_report

REPO_ROOT = Path(__file__).resolve().parents[1]

IMPORTTIME_TRACE = """\
import time: self [us] | cumulative | imported package
import time:       500 |        500 | site
COLDSTART_BEGIN
import time:      1000 |       1000 |     sqlalchemy.util
import time:      3000 |       4000 |   sqlalchemy.engine
import time:       200 |       4200 | sqlalchemy
import time:       100 |        100 |   pydantic_core
import time:      2000 |       2100 | pydantic
import time:        50 |         50 | json
some unrelated stderr line
"""


def test_importtime_trace_is_cut_at_the_marker_and_nesting_is_read() -> None:
    entries = bench_coldstart.parse_importtime(IMPORTTIME_TRACE)

    assert [e.name for e in entries] == [
        "sqlalchemy.util",
        "sqlalchemy.engine",
        "sqlalchemy",
        "pydantic_core",
        "pydantic",
        "json",
    ]
    assert [e.level for e in entries] == [2, 1, 0, 1, 0, 0]
    assert entries[1].self_us == 3000
    assert entries[1].cumulative_us == 4000


def test_what_dominates_ranks_direct_imports_and_packages() -> None:
    entries = bench_coldstart.parse_importtime(IMPORTTIME_TRACE)

    top = bench_coldstart.top_cumulative(entries, count=2)
    by_package = bench_coldstart.self_time_by_package(entries)

    assert top == [
        {"module": "sqlalchemy", "cumulative_ms": 4.2},
        {"module": "pydantic", "cumulative_ms": 2.1},
    ]
    assert by_package[0] == {"package": "sqlalchemy", "self_ms": 4.2}
    assert {"package": "pydantic", "self_ms": 2.0} in by_package
    assert {"package": "pydantic_core", "self_ms": 0.1} in by_package


def _sample(total: float, rss: float = 50.0) -> dict[str, Any]:
    return {"import_s": total / 2, "invoke_s": total / 2, "total_s": total, "peak_rss_mib": rss}


def test_summary_gives_medians_and_the_ratio_to_the_baseline() -> None:
    samples = {
        "baseline": [_sample(0.4), _sample(0.5), _sample(2.0)],  # one outlier
        "search": [_sample(0.7), _sample(0.75, rss=90.0), _sample(0.8)],
    }

    summary = bench_coldstart.summarize(samples)

    assert summary["baseline"]["median_total_s"] == 0.5
    assert summary["baseline"]["ratio_to_baseline"] == 1.0
    assert summary["search"]["median_total_s"] == 0.75
    assert summary["search"]["ratio_to_baseline"] == 1.5
    assert summary["search"]["peak_rss_mib"] == 90.0
    assert summary["search"]["max_total_s"] == 0.8


def test_rounds_rotate_so_no_target_always_runs_first() -> None:
    targets = ["a", "b", "c"]

    firsts = [bench_coldstart.round_order(targets, r)[0] for r in range(3)]

    assert firsts == ["a", "b", "c"]
    assert sorted(bench_coldstart.round_order(targets, 4)) == targets


def test_ingest_event_points_at_the_prepared_object_encoded_as_s3_does() -> None:
    template = json.loads((REPO_ROOT / "events" / "ingest_job_put.json").read_text())

    event = bench_coldstart.ingest_event(template, "bench-bucket", "jobs/7/cold start 1.md", 255)

    record = event["Records"][0]
    assert len(event["Records"]) == 1
    assert record["s3"]["bucket"]["name"] == "bench-bucket"
    assert record["s3"]["object"]["key"] == "jobs/7/cold+start+1.md"
    assert unquote_plus(record["s3"]["object"]["key"]) == "jobs/7/cold start 1.md"
    assert int(record["s3"]["object"]["sequencer"], 16) == 255
    assert record["eventName"] == template["Records"][0]["eventName"]


def test_api_event_body_is_patched_field_by_field() -> None:
    template = json.loads(
        (REPO_ROOT / "events" / "interview_results_create_interview.json").read_text()
    )

    event = bench_coldstart.with_json_body(template, job_id=42)

    assert json.loads(event["body"]) == {**json.loads(template["body"]), "job_id": 42}
    assert json.loads(template["body"])["job_id"] != 42  # the template is left alone


@pytest.mark.parametrize(
    ("target", "sample"),
    [
        ("search", {"status": 503}),
        ("ingest_job", {"response": {"records": 1, "outcomes": ["rejected"]}}),
        ("migrate", {"response": {"action": "upgrade", "current": None}}),
    ],
)
def test_a_cold_start_that_did_not_do_its_job_is_refused(
    target: str, sample: dict[str, Any]
) -> None:
    with pytest.raises(RuntimeError):
        bench_coldstart.check_sample(target, sample)


def test_child_output_is_found_among_the_handler_logs() -> None:
    stdout = '{"level":"INFO","message":"x"}\nCOLDSTART_RESULT {"total_s": 1.5}\n'

    assert bench_coldstart.parse_child_output(stdout) == {"total_s": 1.5}
    with pytest.raises(ValueError, match="no result"):
        bench_coldstart.parse_child_output('{"level":"INFO"}\n')


def test_one_real_cold_start_of_migrate_in_a_fresh_process(
    database_url: str, tmp_path: Path
) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "current"}))
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "POWERTOOLS_SERVICE_NAME": "migrate",
    }

    completed = subprocess.run(
        [sys.executable, str(bench_coldstart.CHILD_SCRIPT), "migrate", str(event)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr[-2000:]
    sample = bench_coldstart.parse_child_output(completed.stdout)
    bench_coldstart.check_sample("migrate", sample)
    assert sample["response"]["current"] == sample["response"]["head"]
    assert 0 < sample["import_s"] < sample["total_s"]
    assert sample["peak_rss_mib"] > 10


def test_size_report_says_when_there_is_no_build(tmp_path: Path) -> None:
    result = bench_size.unavailable("SAM CLI not installed")

    assert result["available"] is False
    assert run_all.size_rows(result) == [
        ("package size", "unavailable", "SAM CLI not installed", "")
    ]


def test_size_of_a_build_directory_counts_every_file_unzipped(tmp_path: Path) -> None:
    layer = tmp_path / "SharedLayer" / "python" / "pkg"
    layer.mkdir(parents=True)
    # data files: a .py would also need its .pyc to pass (tests/test_template_build_report.py)
    (layer / "a.json").write_bytes(b"x" * 1000)
    (layer / "b.so").write_bytes(b"x" * 3000)
    function = tmp_path / "SearchFunction"
    function.mkdir()
    (function / "app.json").write_bytes(b"x" * 10)

    result = bench_size.measure(tmp_path)

    sizes = {artifact["name"]: artifact["bytes"] for artifact in result["artifacts"]}
    assert sizes == {"SearchFunction": 10, "SharedLayer": 4000}
    assert result["layer_bytes"] == 4000
    assert result["passed"] is True
    assert result["artifacts"][1]["largest"][0]["name"] == "pkg"


def test_report_table_keeps_going_past_a_failed_or_reshaped_benchmark() -> None:
    report = {
        "benchmarks": {
            "search": {"error": "no result written; last lines: boom"},
            "ingest": {"result": {"handler": "not a mapping"}, "process_peak_rss_mib": 80.0},
            "coldstart": {
                "result": {
                    "goal_ratio": 1.5,
                    "summary": {
                        "baseline": {"median_total_s": 0.4, "ratio_to_baseline": 1.0},
                        "search": {
                            "median_total_s": 0.6,
                            "ratio_to_baseline": 1.5,
                            "peak_rss_mib": 81.2,
                        },
                    },
                },
                "process_peak_rss_mib": 130.0,
            },
        }
    }

    rows = run_all.table_rows(report)
    text = run_all.render(rows)

    assert ("search", "FAILED", "no result written; last lines: boom", "") in rows
    assert ("cold start", "search", "0.600 s (1.50x)", "<= 1.5x") in rows
    assert ("memory", "cold start search: process peak RSS", "81 MiB", "") in rows
    assert ("memory", "coldstart benchmark process peak RSS", "130 MiB", "") in rows
    assert rows[-1][0] == "memory"  # memory rows gathered at the end
    assert ("ingestion", "handler / COPY", "?", ">= 0.5x") in rows  # "?" for what is missing
    assert text.splitlines()[0].split() == ["area", "measure", "value", "goal"]


def fake_installed_site(root: Path) -> dict[str, list[str]]:
    """lambda_site()'s shape: per function its requirements (if any), the layer's requirements,
    the layer's source, the runtime's boto3."""
    layer_site, layer_source, runtime = root / "layer", root / "layer-src", root / "runtime"
    (layer_site / "sqlalchemy").mkdir(parents=True)
    (layer_site / "sqlalchemy" / "__init__.py").write_text("VERSION = 1\n")
    (layer_source / "flex_shared").mkdir(parents=True)
    (layer_source / "flex_shared" / "__init__.py").write_text("NAME = 'flex'\n")
    (layer_source / "flex_shared" / "__pycache__").mkdir()
    (layer_source / "flex_shared" / "__pycache__" / "stale.cpython-311.pyc").write_bytes(b"x")
    runtime.mkdir()
    site = {}
    for name in bench_coldstart.FUNCTIONS:
        own = root / f"function-{name}"
        (own / "pypdf").mkdir(parents=True)
        (own / "pypdf" / "__init__.py").write_text("PAGES = 0\n")
        site[name] = [str(own), str(layer_site), str(layer_source), str(runtime)]
    return site


@pytest.mark.parametrize("compiled", [True, False])
def test_deployed_code_is_laid_out_as_sam_build_ships_it(tmp_path: Path, compiled: bool) -> None:
    site = fake_installed_site(tmp_path / "site")
    destination = tmp_path / "deployed"

    root, paths = bench_coldstart.deployed_code(REPO_ROOT, site, "", destination, compiled=compiled)

    search = root / "functions" / "search"
    assert (search / "app.py").is_file()
    assert (search / "pypdf" / "__init__.py").is_file()  # its requirements beside app.py
    assert (root / "functions" / "migrate" / "migrations" / "env.py").is_file()
    layer = Path(paths["search"][0])
    assert (layer / "sqlalchemy" / "__init__.py").is_file()
    assert (layer / "flex_shared" / "__init__.py").is_file()
    assert paths["search"][1] == site["search"][-1]  # the runtime's boto3 last
    modules, missing = sam_build_report.modules_without_bytecode(root)
    assert modules > 0
    assert len(missing) == (0 if compiled else modules)
    if not compiled:
        assert not list(root.rglob("*.pyc"))  # not even a stale one from the source tree
