"""Package sizes: the built shared layer and every function, unzipped (``sam build`` output).

Runs ``make sam-build`` first (SAM CLI in .venv-sam, no Docker; arm64 wheels from PyPI) unless
``--no-build``; then reads ``.aws-sam/build``. When SAM is not installed or the build fails,
the result says so (``available: false`` and the reason) instead of reporting stale sizes.

    python -m bench.bench_size [--no-build]

Prints a table and writes bench/results/size.json; ``run()`` returns the same dict.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import bench_db
from bench.output import write_json
from devtools import sam_build_report

REPO_ROOT = bench_db.REPO_ROOT
RESULT_FILE = bench_db.RESULTS_DIR / "size.json"
BUILD_DIR = REPO_ROOT / ".aws-sam" / "build"
SAM = REPO_ROOT / ".venv-sam" / "bin" / "sam"
LAYER = "SharedLayer"


def largest_entries(root: Path, count: int = 6) -> list[dict[str, Any]]:
    """The biggest top-level packages of an artifact (a layer's are under ``python/``)."""
    base = root / "python" if (root / "python").is_dir() else root
    sizes = []
    for entry in base.iterdir():
        if entry.name.endswith(".dist-info") or entry.name == "__pycache__":
            continue
        size = sam_build_report.tree_size(entry) if entry.is_dir() else entry.stat().st_size
        sizes.append((size, entry.name))
    sizes.sort(reverse=True)
    return [
        {"name": name, "bytes": size, "mb": round(size / 1e6, 2)} for size, name in sizes[:count]
    ]


def measure(build_dir: Path, layer: str = LAYER) -> dict[str, Any]:
    """Sizes and problems (budget, forbidden or untested packages) of a build directory."""
    artifacts = sam_build_report.scan(build_dir)
    by_name = {artifact.name: artifact for artifact in artifacts}
    layer_bytes = by_name[layer].size_bytes if layer in by_name else None
    problems = sam_build_report.problems(artifacts, layer)
    return {
        "available": True,
        "build_dir": str(build_dir.relative_to(REPO_ROOT))
        if build_dir.is_relative_to(REPO_ROOT)
        else str(build_dir),
        "artifacts": [
            {
                "name": artifact.name,
                "bytes": artifact.size_bytes,
                "mb": round(artifact.size_bytes / 1e6, 2),
                "largest": largest_entries(build_dir / artifact.name),
            }
            for artifact in artifacts
        ],
        "layer_bytes": layer_bytes,
        "layer_budget_bytes": sam_build_report.LAYER_BUDGET_BYTES,
        "problems": problems,
        "passed": not problems,
    }


def unavailable(reason: str) -> dict[str, Any]:
    return {"available": False, "reason": reason, "passed": None}


def run(build: bool = True) -> dict[str, Any]:
    build_seconds = None
    if build:
        if not SAM.exists():
            return unavailable("SAM CLI not installed (.venv-sam): run `make sam-install`")
        started = time.perf_counter()
        completed = subprocess.run(
            ["make", "--no-print-directory", "sam-build"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        build_seconds = round(time.perf_counter() - started, 1)
        if completed.returncode != 0:
            tail = " | ".join(completed.stderr.strip().splitlines()[-3:])
            return unavailable(f"`make sam-build` failed: {tail}")
    if not BUILD_DIR.is_dir():
        return unavailable(f"{BUILD_DIR.relative_to(REPO_ROOT)} missing: run `make sam-build`")
    result = measure(BUILD_DIR)
    result["built_now"] = build
    result["build_seconds"] = build_seconds
    return result


def print_table(result: dict[str, Any]) -> None:
    if not result["available"]:
        print(f"package sizes unavailable: {result['reason']}")
        return
    print(f"{'artifact':<28} {'unzipped MB':>12}  largest")
    for artifact in result["artifacts"]:
        largest = ", ".join(f"{e['name']} {e['mb']:.1f}" for e in artifact["largest"][:4])
        print(f"{artifact['name']:<28} {artifact['mb']:>12.2f}  {largest}")
    budget = result["layer_budget_bytes"] / 1e6
    print(f"layer budget {budget:.0f} MB; problems: {result['problems'] or 'none'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-build", action="store_true", help="measure the existing build")
    args = parser.parse_args(argv)
    result = run(build=not args.no_build)
    write_json(RESULT_FILE, result)
    print_table(result)
    print(f"written to {RESULT_FILE.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
