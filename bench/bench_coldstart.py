"""Cold starts: every function imported and invoked once in a fresh process, as on Lambda.

    python -m bench.bench_coldstart [--runs 7] [--quick] [--compare REV]

1. As deployed: a copy of what ``sam build`` ships, per function its directory with its
   requirements (and migrations/ for migrate), and the layer (its requirements + flex_shared),
   compiled to unchecked-hash .pyc as devtools/lambda_build.mk does, and run with
   PYTHONDONTWRITEBYTECODE=1 (on Lambda the code directories are read-only). The requirements
   are pip-installed for this machine once per content, under .local/.
2. hyperfine times ``python -S -P bench/coldstart_child.py``: a new interpreter that imports
   ``app`` and handles one event against loopback services (the benchmark database, moto's S3
   server, the fake Titan at 0 ms). The baseline imports boto3 and lists S3 buckets. Each round
   runs every target once, in a rotated order, so load from elsewhere hits them all; the first
   round warms the page cache and is not counted. Medians of the wall time and of the CPU
   time (user + system: on a shared machine it moves far less), and ratios to the baseline's.
3. Each target three more times (interleaved, medians) under ``python -X importtime``: import
   time by top-level package; and its peak RSS.

``--compare REV`` also measures the functions and layer of git REV (targets ``name@REV``),
interleaved with the current tree's. Writes bench/results/coldstart.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import bench_db
from bench.output import REPO_ROOT, RESULTS_DIR, write_json

RESULT_FILE = RESULTS_DIR / "coldstart.json"
CHILD = REPO_ROOT / "bench" / "coldstart_child.py"
SITE_ROOT = REPO_ROOT / ".local" / "bench-lambda-site"  # pip-installed requirements, reused
EVENTS = {  # function -> its sample event (events/)
    "ingest_job": "ingest_job_put.json",
    "search": "search_post.json",
    "interview_results": "interview_results_create_interview.json",
    "migrate": "migrate_upgrade.json",
}
BASELINE = "baseline"
GOAL_RATIO = 1.5
BUCKET = "flex-bench-coldstart"
SAMPLES = REPO_ROOT / "devtools" / "samples"
SEED_SAMPLES = ("backend-engineer-en.md", "data-analyst-ko.txt", "ml-engineer-ko.txt")


# -- the code as deployed ---------------------------------------------------------------------


def _pip_target(*arguments: str) -> Path:
    """``pip install --target`` with ``arguments``, once per their content."""
    key = hashlib.sha256()
    for argument in arguments:
        key.update(Path(argument).read_bytes() if Path(argument).is_file() else argument.encode())
    target = SITE_ROOT / key.hexdigest()[:12]
    if not (target / ".complete").exists():
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run(
            [*pip, "--only-binary=:all:", "--target", str(target), *arguments], check=True
        )
        (target / ".complete").touch()
    return target


def runtime_boto3() -> Path:
    """boto3 as the Lambda runtime provides it (the version the project tests with)."""
    from importlib.metadata import version

    return _pip_target(f"boto3=={version('boto3')}")


def deploy(tree: Path, destination: Path) -> dict[str, list[Path]]:
    """What ``sam build`` ships from ``tree`` (the layer, and every function's whole
    directory with its requirements), compiled; per function its sys.path directories."""
    layer = destination / "opt" / "python"
    _copy(_pip_target("-r", str(tree / "layers/shared/requirements.txt")), layer)
    _copy(tree / "layers/shared/flex_shared", layer / "flex_shared")
    paths = {}
    for name in EVENTS:
        task = destination / name
        _copy(tree / "functions" / name, task)
        requirements = tree / "functions" / name / "requirements.txt"
        if requirements.read_text(encoding="utf-8").strip():  # --no-deps: the rest is the layer's
            _copy(_pip_target("--no-deps", "-r", str(requirements)), task)
        if name == "migrate":  # as functions/migrate/Makefile ships it
            _copy(tree / "migrations", task / "migrations")
        paths[name] = [task, layer]
    compileall = [sys.executable, "-m", "compileall", "-q", "-j", "0"]
    subprocess.run(
        [*compileall, "--invalidation-mode", "unchecked-hash", str(destination)], check=True
    )
    return paths


def _copy(source: Path, destination: Path) -> None:
    skipped = shutil.ignore_patterns(
        "__pycache__", "bin", ".complete", "Makefile", "requirements.txt"
    )
    shutil.copytree(source, destination, ignore=skipped, dirs_exist_ok=True)


def export_tree(revision: str, directory: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", revision], cwd=REPO_ROOT, capture_output=True, check=True
    )
    directory.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive.stdout, check=True)
    return directory


# -- the services and events ------------------------------------------------------------------


@contextmanager
def services() -> Iterator[tuple[dict[str, str], Any]]:
    """The child's environment (template.yaml's Globals, pointed at loopback services), and an
    S3 client of the same moto server."""
    from devtools.fake_titan import FakeTitan
    from devtools.local.s3 import MotoS3, s3_client

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    database_url = bench_db.ensure_database("bench_coldstart", recreate=True)
    moto = MotoS3()
    s3_endpoint = moto.start()
    try:
        with FakeTitan(record_requests=False) as titan:
            env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
            env |= {
                "DATABASE_URL": database_url,
                "EMBEDDING_PROVIDER": "titan",
                "AWS_ENDPOINT_URL_S3": s3_endpoint,
                "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": titan.endpoint_url,
                "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench",
                "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true",
                "POWERTOOLS_METRICS_NAMESPACE": "FlexBench",
                "PYTHONDONTWRITEBYTECODE": "1",
            }
            s3 = s3_client(s3_endpoint, "us-east-1")
            s3.create_bucket(Bucket=BUCKET)
            yield env, s3
    finally:
        moto.stop()


class Events:
    """An event file per run: each ingest_job run ingests a new object (a full ingestion:
    fetch, chunk, embed every chunk, one write transaction); interviews name a seeded job."""

    def __init__(self, directory: Path, s3: Any) -> None:
        self.directory, self.s3, self.count, self.job_id = directory, s3, 0, 0

    def _write(self, event: Any) -> Path:
        self.count += 1
        path = self.directory / f"event-{self.count:05d}.json"
        path.write_text(json.dumps(event), encoding="utf-8")
        return path

    def ingest(self, *samples: str) -> Path:
        from devtools.local.s3 import build_s3_event
        from devtools.local.template import Bucket

        records = []
        for sample in samples:
            key = f"jobs/7/{self.count:05d}-{sample}"
            self.s3.put_object(Bucket=BUCKET, Key=key, Body=(SAMPLES / sample).read_bytes())
            event = build_s3_event(
                Bucket("Jobs", BUCKET, versioned=False),
                "ObjectCreated:Put",
                key,
                sequencer=f"{self.count + 1:018X}",
                configuration_id="bench-coldstart",
            )
            records += event["Records"]
        return self._write({"Records": records})

    def for_target(self, target: str) -> Path:
        function = target.split("@")[0]
        if function == BASELINE:
            return Path(os.devnull)
        if function == "ingest_job":
            return self.ingest(SEED_SAMPLES[0])
        event = json.loads((REPO_ROOT / "events" / EVENTS[function]).read_text(encoding="utf-8"))
        if function == "interview_results":
            event["body"] = json.dumps({**json.loads(event["body"]), "job_id": self.job_id})
        return self._write(event)


# -- the run ----------------------------------------------------------------------------------


def child_command(target: str, event: Path, sys_path: list[Path], *options: str) -> list[str]:
    function = target.split("@")[0]
    # -S -P: only ``sys_path`` and the standard library, as on Lambda
    python = [sys.executable, "-S", "-P", *options]
    return [*python, str(CHILD), function, str(event), *map(str, sys_path)]


def hyperfine_round(
    order: list[str], paths: dict[str, list[Path]], events: Events, env: dict[str, str]
) -> dict[str, tuple[float, float]]:
    """One run of each target under hyperfine; the wall and the CPU (user + system) seconds
    each took. On a shared machine the CPU time moves far less than the wall time."""
    commands = {
        target: child_command(target, events.for_target(target), paths[target]) for target in order
    }
    export = events.directory / "round.json"
    hyperfine = ["hyperfine", "-N", "--runs", "1", "--style", "none", "--ignore-failure"]
    for target, command in commands.items():
        hyperfine += ["--command-name", target, shlex.join(command)]
    subprocess.run([*hyperfine, "--export-json", str(export)], env=env, check=True)
    results = json.loads(export.read_text(encoding="utf-8"))["results"]
    for result in results:
        if result["exit_codes"] != [0]:  # run it again, to show why
            failed = subprocess.run(
                commands[result["command"]], env=env, capture_output=True, text=True
            )
            raise RuntimeError(f"{result['command']} failed: {failed.stderr[-2000:]}")
    return {r["command"]: (r["times"][0], r["user"] + r["system"]) for r in results}


def import_trace(command: list[str], env: dict[str, str]) -> tuple[dict[str, float], float]:
    """One run under ``-X importtime``: milliseconds of import by top-level package (the
    modules' own time, whoever imported them) after the interpreter's start-up; peak RSS MiB."""
    stderr = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stderr
    by_package: dict[str, float] = defaultdict(float)
    peak_rss_mib = 0.0
    for line in stderr.split("COLDSTART_BEGIN", 1)[1].splitlines():
        fields = line.removeprefix("import time:").split("|")
        if line.startswith("import time:") and fields[0].strip().isdigit():
            by_package[fields[2].strip().split(".")[0]] += int(fields[0]) / 1000
        elif line.startswith("peak_rss_kib "):
            peak_rss_mib = int(line.split()[1]) / 1024
    return by_package, peak_rss_mib


def import_profile(runs: list[tuple[dict[str, float], float]]) -> dict[str, Any]:
    """Per package the median of several runs (one run on a busy machine can pin a stall on any
    module), and the largest peak RSS."""
    packages = {name for trace, _ in runs for name in trace}
    medians = {name: statistics.median(t.get(name, 0.0) for t, _ in runs) for name in packages}
    ranked = sorted(medians.items(), key=lambda item: -item[1])
    return {
        "import_ms": round(statistics.median(sum(trace.values()) for trace, _ in runs), 1),
        "import_ms_by_package": {name: round(ms, 1) for name, ms in ranked[:8]},
        "peak_rss_mib": round(max(peak for _, peak in runs), 1),
    }


def run(
    runs: int = 7, compare: str | None = None, importtime_runs: int = 3, log: Any = print
) -> dict[str, Any]:
    if shutil.which("hyperfine") is None:
        raise SystemExit("hyperfine not found: apt-get install hyperfine (Debian/Ubuntu)")
    with tempfile.TemporaryDirectory() as scratch_name, services() as (env, s3):
        scratch = Path(scratch_name)
        paths: dict[str, list[Path]] = {BASELINE: [runtime_boto3()]}
        trees = {"": REPO_ROOT} | (
            {f"@{compare}": export_tree(compare, scratch / "rev")} if compare else {}
        )
        for suffix, tree in trees.items():
            deployed = deploy(tree, scratch / f"deployed{suffix.replace('@', '-')}")
            paths |= {name + suffix: [*dirs, *paths[BASELINE]] for name, dirs in deployed.items()}
        events = Events(scratch, s3)
        # not timed: the jobs that search finds and interviews refer to
        seed = child_command("ingest_job", events.ingest(*SEED_SAMPLES), paths["ingest_job"])
        subprocess.run(seed, env=env, check=True, capture_output=True)
        events.job_id = 1  # the database is new
        targets = list(paths)
        samples: dict[str, dict[str, list[float]]] = {"wall": {}, "cpu": {}}
        for round_index in range(runs + 1):
            shift = round_index % len(targets)
            measured = hyperfine_round(targets[shift:] + targets[:shift], paths, events, env)
            for target, (wall_s, cpu_s) in measured.items():
                if round_index:  # round 0 warms up
                    samples["wall"].setdefault(target, []).append(wall_s)
                    samples["cpu"].setdefault(target, []).append(cpu_s)
            log(f"  cold start round {round_index}/{runs} done")
        traces: dict[str, list[tuple[dict[str, float], float]]] = {t: [] for t in targets}
        for _ in range(importtime_runs):  # interleaved too
            for target in targets:
                event = events.for_target(target)
                command = child_command(target, event, paths[target], "-X", "importtime")
                traces[target].append(import_trace(command, env))
        profiles = {target: import_profile(traces[target]) for target in targets}
    medians = {
        measure: {target: statistics.median(series[target]) for target in targets}
        for measure, series in samples.items()
    }
    wall, cpu = medians["wall"], medians["cpu"]
    summary = {
        target: {
            "median_s": round(wall[target], 4),
            "ratio_to_baseline": round(wall[target] / wall[BASELINE], 3),
            "median_cpu_s": round(cpu[target], 4),
            "cpu_ratio_to_baseline": round(cpu[target] / cpu[BASELINE], 3),
            "min_s": round(min(samples["wall"][target]), 4),
            "min_cpu_s": round(min(samples["cpu"][target]), 4),
            **profiles[target],
        }
        for target in targets
    }
    worst = max(summary[name]["ratio_to_baseline"] for name in EVENTS)
    return {
        "method": (
            "medians over rounds of a fresh `python -S` process (hyperfine; wall and CPU time)"
            " that imports the deployed app.py (unchecked-hash .pyc, read-only) and handles one"
            " event against loopback services; interpreter start-up included; targets"
            " interleaved per round"
        ),
        "runs": runs,
        "goal_ratio": GOAL_RATIO,
        "summary": summary,
        "worst_ratio": worst,
        "passed": worst <= GOAL_RATIO,
        "compared_with": compare,
        "before_after": {
            name: {
                f"{measure}_{when}_s": round(medians[measure][target], 4)
                for measure in ("wall", "cpu")
                for when, target in (("before", f"{name}@{compare}"), ("now", name))
            }
            | {
                f"{measure}_change_percent": round(
                    (medians[measure][name] / medians[measure][f"{name}@{compare}"] - 1) * 100, 1
                )
                for measure in ("wall", "cpu")
            }
            for name in EVENTS
            if compare
        },
        "samples": samples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="rounds (one run of each target)")
    parser.add_argument("--quick", action="store_true", help="3 rounds (smoke test)")
    parser.add_argument("--compare", metavar="REV", help="also measure git REV's functions")
    args = parser.parse_args(argv)
    quick = {"runs": 3, "importtime_runs": 1} if args.quick else {"runs": args.runs}
    result = run(compare=args.compare, **quick)
    write_json(RESULT_FILE, result)
    print(
        f"{'target':<28} {'wall s':>7} {'ratio':>6} {'CPU s':>6} {'ratio':>6} {'import ms':>9}",
        end="",
    )
    print(f" {'RSS MiB':>7}   import ms by package")
    for target, row in result["summary"].items():
        print(
            f"{target:<28} {row['median_s']:>7.3f} {row['ratio_to_baseline']:>5.2f}x"
            f" {row['median_cpu_s']:>6.3f} {row['cpu_ratio_to_baseline']:>5.2f}x"
            f" {row['import_ms']:>9.0f} {row['peak_rss_mib']:>7.1f}   "
            + ", ".join(f"{p} {ms:.0f}" for p, ms in list(row["import_ms_by_package"].items())[:5])
        )
    print(f"worst ratio {result['worst_ratio']:.2f}x (goal <= {GOAL_RATIO}x)")
    for name, change in result["before_after"].items():
        print(
            f"  {name}: wall {change['wall_before_s']:.3f} s at {args.compare} ->"
            f" {change['wall_now_s']:.3f} s now ({change['wall_change_percent']:+.1f}%), CPU"
            f" {change['cpu_before_s']:.3f} -> {change['cpu_now_s']:.3f} s"
            f" ({change['cpu_change_percent']:+.1f}%)"
        )
    print(f"written to {RESULT_FILE.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
