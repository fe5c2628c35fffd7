"""Cold starts: import + first invocation of every function in a fresh process.

Each sample is a new process (``bench/coldstart_child.py``), like a new Lambda container: it
imports the function's ``app.py`` by path and handles one sample event from ``events/``, against
real local services on loopback: the benchmark database (embedded PostgreSQL + pgvector), moto's
S3 server and the fake Titan (``EMBEDDING_PROVIDER=titan`` through
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``, 0 ms model latency). The baseline process imports boto3
and makes one S3 ``ListBuckets`` call to the same moto server. Targets run interleaved, round
by round (their order rotating), so a burst of load from elsewhere on the machine hits all of
them; the report gives medians and each function's ratio to the baseline (goal <= 1.5x).
One more run per target under ``python -X importtime`` says what dominates.

Code directories as deployed (the default): on Lambda /var/task and /opt are read-only, so
CPython can neither write nor refresh bytecode caches there; a module without a shipped .pyc is
compiled from source at every cold start. The children therefore run with
PYTHONDONTWRITEBYTECODE=1 against a copy of what ``sam build`` packages (the function's modules
and requirements in one directory, the layer's requirements + flex_shared in another), compiled
as devtools/lambda_build.mk does (unchecked-hash .pyc). ``--no-pyc-too`` also measures the same
copy without any .pyc (``function@no-pyc``: what the builds shipped before). The baseline's
boto3 keeps its .pyc, as the Lambda runtime's does. ``--writable`` instead imports from the
installed directories, whose .pyc the first run writes and later runs reuse.

    python -m bench.bench_coldstart [--runs 7] [--quick] [--no-pyc-too] [--writable]

Prints a table and writes bench/results/coldstart.json; ``run()`` returns the same dict.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from bench.output import write_json

# `python -m bench.bench_coldstart` from the repository root: the layer is not installed.
_LAYER = Path(__file__).resolve().parents[1] / "layers" / "shared"
if str(_LAYER) not in sys.path:
    sys.path.insert(0, str(_LAYER))

from bench import bench_db  # noqa: E402

REPO_ROOT = bench_db.REPO_ROOT
RESULT_FILE = bench_db.RESULTS_DIR / "coldstart.json"
CHILD_SCRIPT = REPO_ROOT / "bench" / "coldstart_child.py"
DATABASE = "bench_coldstart"
BUCKET = "flex-bench-coldstart"
REGION = "us-east-1"
BASELINE = "baseline"
FUNCTIONS = ("ingest_job", "search", "interview_results", "migrate")
EVENT_FILES = {
    "ingest_job": "ingest_job_put.json",
    "search": "search_post.json",
    "interview_results": "interview_results_create_interview.json",
    "migrate": "migrate_upgrade.json",
}
GOAL_RATIO = 1.5
SAMPLES_DIR = REPO_ROOT / "devtools" / "samples"
# Uploaded before the measured runs: the jobs that search finds and interviews refer to.
SEED_SAMPLES = ("backend-engineer-en.md", "data-analyst-ko.txt", "ml-engineer-ko.txt")
# Each measured ingest_job run ingests a new object with this text (a full ingestion:
# fetch, extract, chunk, embed every chunk through the fake Titan, one write transaction).
INGEST_SAMPLE = "backend-engineer-en.md"
RESULT_PREFIX = "COLDSTART_RESULT "
BEGIN_MARKER = "COLDSTART_BEGIN"
_IMPORTTIME_PREFIX = "import time:"
# A Lambda-like sys.path (see lambda_site): installed once per requirements, reused.
SITE_ROOT = REPO_ROOT / ".local" / "bench-lambda-site"
NO_PYC = "no-pyc"  # variant: the deployed code without any .pyc
# As devtools/lambda_build.mk compiles what sam build ships.
COMPILE_UNCHECKED_HASH: tuple[str, ...] = (sys.executable, "-m", "compileall", "-q", "-f")
COMPILE_UNCHECKED_HASH += ("-j", "0", "--invalidation-mode", "unchecked-hash")


# -- pure helpers (tested in tests/test_bench_coldstart.py) -----------------------------------


@dataclass(frozen=True)
class ImportEntry:
    name: str
    self_us: int
    cumulative_us: int
    level: int  # 0 = imported directly by the code being run, 1 = by that import, ...


def parse_importtime(stderr: str) -> list[ImportEntry]:
    """The ``-X importtime`` lines after the child's ``COLDSTART_BEGIN`` marker (the
    interpreter's own start-up before it is the same for every target)."""
    lines = stderr.splitlines()
    if BEGIN_MARKER in lines:
        lines = lines[lines.index(BEGIN_MARKER) + 1 :]
    entries: list[ImportEntry] = []
    for line in lines:
        if not line.startswith(_IMPORTTIME_PREFIX):
            continue
        fields = line[len(_IMPORTTIME_PREFIX) :].split("|", 2)
        if len(fields) != 3:
            continue
        try:
            self_us, cumulative_us = int(fields[0]), int(fields[1])
        except ValueError:  # the header line
            continue
        name_field = fields[2][1:]  # CPython writes "| " then two spaces per nesting level
        level = (len(name_field) - len(name_field.lstrip(" "))) // 2
        entries.append(ImportEntry(name_field.strip(), self_us, cumulative_us, level))
    return entries


def top_cumulative(entries: Iterable[ImportEntry], count: int = 8) -> list[dict[str, Any]]:
    """The direct imports that cost most, everything they pulled in included."""
    direct = sorted((e for e in entries if e.level == 0), key=lambda e: -e.cumulative_us)
    return [{"module": e.name, "cumulative_ms": round(e.cumulative_us / 1000, 1)} for e in direct][
        :count
    ]


def self_time_by_package(entries: Iterable[ImportEntry], count: int = 8) -> list[dict[str, Any]]:
    """Import time spent in each top-level package's own modules (``sqlalchemy.orm.*`` counts
    for ``sqlalchemy``), whoever imported them: the total is the whole import time."""
    totals: dict[str, int] = defaultdict(int)
    for entry in entries:
        totals[entry.name.split(".")[0]] += entry.self_us
    ranked = sorted(totals.items(), key=lambda item: -item[1])
    return [{"package": name, "self_ms": round(us / 1000, 1)} for name, us in ranked[:count]]


def median_entries(runs: Sequence[Sequence[ImportEntry]]) -> list[ImportEntry]:
    """One trace from several: per module, the median of its times over the runs (one
    ``-X importtime`` run on a busy machine can pin a stall on any module)."""
    by_key: dict[tuple[str, int], list[ImportEntry]] = defaultdict(list)
    for entries in runs:
        for entry in entries:
            by_key[(entry.name, entry.level)].append(entry)
    return [
        ImportEntry(
            name,
            level=level,
            self_us=int(statistics.median(e.self_us for e in found)),
            cumulative_us=int(statistics.median(e.cumulative_us for e in found)),
        )
        for (name, level), found in by_key.items()
    ]


def split_target(target: str) -> tuple[str, str | None]:
    """``search@before`` -> (``search``, ``before``): the same function from another tree."""
    function, _, variant = target.partition("@")
    return function, variant or None


def parse_child_output(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return result
    raise ValueError("the cold-start child printed no result line")


def ingest_event(template: Mapping[str, Any], bucket: str, key: str, sequencer: int) -> Any:
    """``template``'s first record, pointed at ``bucket``/``key`` (URL-encoded as S3 does)."""
    record = copy.deepcopy(template["Records"][0])
    record["s3"]["bucket"]["name"] = bucket
    record["s3"]["bucket"]["arn"] = f"arn:aws:s3:::{bucket}"
    record["s3"]["object"]["key"] = quote_plus(key, safe="/")
    record["s3"]["object"]["sequencer"] = f"{sequencer:018X}"
    return {"Records": [record]}


def with_json_body(template: Mapping[str, Any], **fields: Any) -> Any:
    """An API Gateway event whose JSON body has ``fields`` replaced."""
    event = copy.deepcopy(dict(template))
    event["body"] = json.dumps({**json.loads(event["body"]), **fields})
    return event


def check_sample(target: str, sample: Mapping[str, Any]) -> None:
    """A cold start only counts when the invocation did its job."""
    target, _ = split_target(target)
    if target == BASELINE:
        return
    if "status" in sample:
        if not 200 <= int(sample["status"]) < 300:
            raise RuntimeError(f"{target} answered {sample['status']}")
        return
    response = sample.get("response")
    outcomes = response.get("outcomes") if response else None
    if target == "ingest_job" and (not outcomes or set(outcomes) != {"written"}):
        raise RuntimeError(f"ingest_job did not write the job: {response}")
    if target == "migrate" and (not response or not response.get("current")):
        raise RuntimeError(f"migrate did not report a revision: {response}")


def summarize(samples: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """Medians per target and each target's ratio to the baseline's median total."""

    def median(target: str, key: str) -> float:
        return statistics.median(float(s[key]) for s in samples[target])

    baseline_total = median(BASELINE, "total_s")
    summary: dict[str, Any] = {}
    for target, runs in samples.items():
        totals = [float(s["total_s"]) for s in runs]
        summary[target] = {
            "runs": len(runs),
            "median_total_s": round(median(target, "total_s"), 4),
            "median_import_s": round(median(target, "import_s"), 4),
            "median_invoke_s": round(median(target, "invoke_s"), 4),
            "min_total_s": round(min(totals), 4),
            "max_total_s": round(max(totals), 4),
            "peak_rss_mib": round(max(float(s["peak_rss_mib"]) for s in runs), 1),
            "ratio_to_baseline": round(median(target, "total_s") / baseline_total, 3),
        }
    return summary


def compare_variants(summary: Mapping[str, Mapping[str, Any]], variant: str) -> dict[str, Any]:
    """Per function measured in both trees: its median now and in ``variant``, and the change."""
    changes: dict[str, Any] = {}
    for target, row in summary.items():
        function, found = split_target(target)
        if found != variant or function not in summary:
            continue
        before, after = row["median_total_s"], summary[function]["median_total_s"]
        changes[function] = {
            f"{variant}_s": before,
            "now_s": after,
            f"{variant}_ratio": row["ratio_to_baseline"],
            "now_ratio": summary[function]["ratio_to_baseline"],
            "change_percent": round((after - before) / before * 100, 1),
        }
    return changes


def round_order(targets: Sequence[str], round_index: int) -> list[str]:
    """``targets`` rotated by ``round_index``: no target always runs first after a pause."""
    shift = round_index % len(targets)
    return [*targets[shift:], *targets[:shift]]


# -- the run ----------------------------------------------------------------------------------


def _pip_target(target: Path, arguments: Sequence[str]) -> None:
    if (target / ".complete").exists():
        return
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "--only-binary=:all:", "--target", str(target), *arguments],
        check=True,
        capture_output=True,
        text=True,
    )
    (target / ".complete").touch()


def lambda_site(compare_tree: Path | None = None, variant: str = "") -> dict[str, list[str]]:
    """Per target, the directories to put on ``sys.path`` (after the function's own) so that a
    cold start imports what Lambda would find, and only that: the function's requirements, the
    layer's requirements, the layer's source (so a change is measured without a rebuild) and
    boto3 as the Lambda runtime provides it (same version as the tests use), in Lambda's order.
    The project's virtualenv holds many more distributions (moto, pytest, pygments, ...), which
    changes what some libraries import and how long metadata scans take.

    Installed once per requirements content with pip (this machine's wheels; the deployed
    arm64 build cannot run here) under .local/, then reused."""
    import hashlib
    import importlib.metadata

    boto3_version = importlib.metadata.version("boto3")
    requirement_files = [REPO_ROOT / "layers" / "shared" / "requirements.txt"] + [
        REPO_ROOT / "functions" / name / "requirements.txt" for name in FUNCTIONS
    ]
    digest = hashlib.sha256(boto3_version.encode())
    for path in requirement_files:
        digest.update(path.read_bytes() if path.exists() else b"")
    root = SITE_ROOT / digest.hexdigest()[:12]
    runtime = root / "runtime"
    _pip_target(runtime, [f"boto3=={boto3_version}"])
    layer = root / "layer"
    _pip_target(layer, ["-r", str(requirement_files[0])])
    common = [str(layer), str(_LAYER), str(runtime)]
    paths: dict[str, list[str]] = {BASELINE: [str(runtime)]}
    for name in FUNCTIONS:
        requirements = REPO_ROOT / "functions" / name / "requirements.txt"
        own: list[str] = []
        if requirements.exists() and requirements.read_text(encoding="utf-8").strip():
            target = root / f"function-{name}"
            # --no-deps as functions/migrate/Makefile: the rest comes from the layer
            _pip_target(target, ["--no-deps", "-r", str(requirements)])
            own = [str(target)]
        paths[name] = own + common
        if compare_tree is not None:
            tree_layer = str(compare_tree / "layers" / "shared")
            paths[f"{name}@{variant}"] = [
                tree_layer if p == str(_LAYER) else p for p in paths[name]
            ]
    return paths


def _copy_without_bytecode(source: Path, destination: Path) -> None:
    shutil.copytree(
        source,
        destination,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".complete"),
        dirs_exist_ok=True,
    )


def deployed_code(
    tree: Path,
    site: Mapping[str, Sequence[str]],
    suffix: str,
    destination: Path,
    *,
    compiled: bool,
) -> tuple[Path, dict[str, list[str]]]:
    """A copy of what ``sam build`` packages, from ``tree``'s functions and ``site``'s
    installed requirements (``lambda_site()``): per function one directory with its modules,
    its requirements (and migrations/ for migrate), as /var/task; one directory with the
    layer's requirements and flex_shared, as /opt/python. No .pyc at all, or (``compiled``)
    unchecked-hash .pyc for every module, as devtools/lambda_build.mk ships them.

    Returns the root to use as the child's ``COLDSTART_REPO_ROOT`` and, per target
    (``function + suffix``), the directories that follow the function's on ``sys.path``."""
    from devtools.sam_build_report import modules_without_bytecode

    layer_out = destination / "opt" / "python"
    paths: dict[str, list[str]] = {}
    for name in FUNCTIONS:
        entries = list(site[name + suffix])
        own, (layer_site, layer_source, runtime) = entries[:-3], entries[-3:]
        if not layer_out.exists():
            _copy_without_bytecode(Path(layer_site), layer_out)
            _copy_without_bytecode(Path(layer_source) / "flex_shared", layer_out / "flex_shared")
        function_out = destination / "functions" / name
        function_out.mkdir(parents=True)
        for module in (tree / "functions" / name).glob("*.py"):
            shutil.copy2(module, function_out)
        for init in (tree / "functions" / name).glob("*/__init__.py"):  # the function's package
            _copy_without_bytecode(init.parent, function_out / init.parent.name)
        for requirements in own:
            _copy_without_bytecode(Path(requirements), function_out)
        if name == "migrate":
            _copy_without_bytecode(tree / "migrations", function_out / "migrations")
        paths[name + suffix] = [str(layer_out), runtime]
    if compiled:
        subprocess.run(
            [*COMPILE_UNCHECKED_HASH, str(destination)],
            check=True,
            capture_output=True,
        )
    modules, missing = modules_without_bytecode(destination)
    if len(missing) != (0 if compiled else modules):
        raise RuntimeError(f"{destination}: {len(missing)} of {modules} modules without .pyc")
    return destination, paths


def child_environment(database_url: str, s3_endpoint: str, titan_endpoint: str) -> dict[str, str]:
    """What a deployed function sees (template.yaml Globals), pointed at loopback services."""
    env = {
        name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TMPDIR") if name in os.environ
    }
    env.update(
        {
            "DATABASE_URL": database_url,
            "EMBEDDING_PROVIDER": "titan",
            "EMBEDDING_MODEL_ID": "amazon.titan-embed-text-v2:0",
            "AWS_ENDPOINT_URL_S3": s3_endpoint,
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": titan_endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "FlexBench",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
    )
    return env


def _spawn(
    target: str,
    event_file: Path | None,
    env: Mapping[str, str],
    *,
    site: Mapping[str, list[str]] | None = None,
    trees: Mapping[str | None, Path] | None = None,
    importtime: bool = False,
) -> tuple[dict[str, Any], str]:
    command = [sys.executable]
    function, variant = split_target(target)
    extra_env = {"POWERTOOLS_SERVICE_NAME": function} if function != BASELINE else {}
    if function != BASELINE and trees and variant in trees:
        extra_env["COLDSTART_REPO_ROOT"] = str(trees[variant])
    elif variant is not None:
        raise ValueError(f"no tree for {target}")
    if site is not None:
        command.append("-S")  # no site-packages: only what lambda_site() lists
        extra_env["COLDSTART_PATH"] = os.pathsep.join(site[target])
    if importtime:
        command += ["-X", "importtime"]
    command += [str(CHILD_SCRIPT), function]
    if event_file is not None:
        command.append(str(event_file))
    completed = subprocess.run(
        command,
        env={**env, **extra_env},
        cwd=tempfile.gettempdir(),  # nothing of the checkout on sys.path by accident
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.splitlines()[-15:])
        raise RuntimeError(f"cold start of {target} failed ({completed.returncode}):\n{tail}")
    sample = parse_child_output(completed.stdout)
    check_sample(target, sample)
    return sample, completed.stderr


@contextmanager
def _services() -> Iterator[tuple[str, str, Any]]:
    from devtools.fake_titan import FakeTitan
    from devtools.local.s3 import MotoS3, s3_client

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    moto = MotoS3()
    endpoint = moto.start()
    try:
        with FakeTitan(record_requests=False) as titan:
            yield endpoint, titan.endpoint_url, s3_client(endpoint, REGION)
    finally:
        moto.stop()


class _Events:
    """Event files for each run, patched to the prepared data."""

    def __init__(self, directory: Path, s3: Any) -> None:
        self._directory = directory
        self._s3 = s3
        self._templates = {
            name: json.loads((REPO_ROOT / "events" / file).read_text(encoding="utf-8"))
            for name, file in EVENT_FILES.items()
        }
        self._ingest_body = (SAMPLES_DIR / INGEST_SAMPLE).read_bytes()
        self._count = 0
        self.job_id: int | None = None

    def _write(self, name: str, event: Any) -> Path:
        self._count += 1
        path = self._directory / f"{self._count:04d}-{name}.json"
        path.write_text(json.dumps(event), encoding="utf-8")
        return path

    def seed(self) -> Path:
        """One event with a record per seed sample (uploaded now)."""
        records = []
        for index, sample in enumerate(SEED_SAMPLES, start=1):
            key = f"jobs/7/{sample}"
            self._s3.put_object(Bucket=BUCKET, Key=key, Body=(SAMPLES_DIR / sample).read_bytes())
            records += ingest_event(self._templates["ingest_job"], BUCKET, key, index)["Records"]
        return self._write("seed", {"Records": records})

    def for_target(self, target: str) -> Path | None:
        target, _ = split_target(target)
        if target == BASELINE:
            return None
        if target == "ingest_job":
            key = f"jobs/7/coldstart-{self._count:04d} backend.md"
            self._s3.put_object(Bucket=BUCKET, Key=key, Body=self._ingest_body)
            return self._write(target, ingest_event(self._templates[target], BUCKET, key, 1))
        if target == "interview_results":
            assert self.job_id is not None
            event = with_json_body(self._templates[target], job_id=self.job_id)
            return self._write(target, event)
        return self._write(target, self._templates[target])


def _first_job_id(url: str) -> int:
    from sqlalchemy import text

    engine = bench_db.engine_for(url)
    try:
        with engine.connect() as connection:
            job_id = connection.execute(text("SELECT min(id) FROM jobs")).scalar_one()
    finally:
        engine.dispose()
    if job_id is None:
        raise RuntimeError("seeding ingested no job")
    return int(job_id)


def _export_tree(revision: str, directory: Path) -> Path:
    """The repository at ``revision`` (``git archive``), to measure against the working tree."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive, check=True)
    return directory


def run(
    runs: int = 7,
    importtime: bool = True,
    lambda_like: bool = True,
    compare_revision: str | None = None,
    importtime_runs: int = 3,
    log: Any = print,
    read_only: bool = True,
    no_pyc_too: bool = False,
) -> dict[str, Any]:
    targets: tuple[str, ...] = (BASELINE, *FUNCTIONS)
    trees: dict[str | None, Path] = {}
    scratch = tempfile.TemporaryDirectory()
    scratch_dir = Path(scratch.name)
    if compare_revision is not None:
        variant = "before"
        trees[variant] = _export_tree(compare_revision, scratch_dir / "before-tree")
        targets += tuple(f"{name}@{variant}" for name in FUNCTIONS)
    site: dict[str, list[str]] | None = None
    site_note = "the project's .venv (every dev dependency importable)"
    code_note = "writable: .pyc written by the first run, reused by later ones"
    read_only = read_only and lambda_like
    if lambda_like:
        try:
            site = lambda_site(trees.get("before"), "before")
            site_note = "Lambda-like: function + its requirements, layer, runtime boto3 only"
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or str(exc)
            site_note += f" (Lambda-like site could not be installed: {detail.strip()[-200:]})"
            log(f"  {site_note}")
            read_only = False
    if read_only and site is not None:
        installed = dict(site)
        trees[None], deployed = deployed_code(
            REPO_ROOT, installed, "", scratch_dir / "pyc", compiled=True
        )
        site.update(deployed)
        if "before" in trees:
            trees["before"], deployed = deployed_code(
                trees["before"], installed, "@before", scratch_dir / "before-pyc", compiled=True
            )
            site.update(deployed)
        if no_pyc_too:
            trees[NO_PYC], deployed = deployed_code(
                REPO_ROOT, installed, "", scratch_dir / NO_PYC, compiled=False
            )
            site.update({f"{name}@{NO_PYC}": path for name, path in deployed.items()})
            targets += tuple(f"{name}@{NO_PYC}" for name in FUNCTIONS)
        code_note = (
            "read-only as on Lambda (PYTHONDONTWRITEBYTECODE=1) on a copy of the deployed"
            " packages with unchecked-hash .pyc as sam build ships them"
            + (f"; @{NO_PYC}: the same without any .pyc" if no_pyc_too else "")
            + "; baseline boto3 with its .pyc"
        )
    url = bench_db.ensure_database(DATABASE, recreate=True)
    samples: dict[str, list[dict[str, Any]]] = {target: [] for target in targets}
    imports: dict[str, Any] = {}
    with _services() as (s3_endpoint, titan_endpoint, s3), tempfile.TemporaryDirectory() as tmp:
        s3.create_bucket(Bucket=BUCKET)
        env = child_environment(url, s3_endpoint, titan_endpoint)
        if read_only:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        events = _Events(Path(tmp), s3)
        # not timed: the data the others read
        _spawn("ingest_job", events.seed(), env, site=site, trees=trees)
        events.job_id = _first_job_id(url)
        for target in targets:  # warm-up round (page cache, .pyc files): not counted
            _spawn(target, events.for_target(target), env, site=site, trees=trees)
        for round_index in range(runs):
            for target in round_order(targets, round_index):
                event = events.for_target(target)
                sample, _ = _spawn(target, event, env, site=site, trees=trees)
                samples[target].append(sample)
            log(f"  cold start round {round_index + 1}/{runs} done")
        # the variant without .pyc is measured for its total only
        traced = [t for t in targets if split_target(t)[1] != NO_PYC] if importtime else []
        for target in traced:
            traces = []
            for _ in range(importtime_runs):
                event = events.for_target(target)
                _, stderr = _spawn(target, event, env, site=site, trees=trees, importtime=True)
                traces.append(parse_importtime(stderr))
            entries = median_entries(traces)
            imports[target] = {
                "total_import_ms": round(
                    sum(e.cumulative_us for e in entries if e.level == 0) / 1000, 1
                ),
                "top_cumulative": top_cumulative(entries),
                "self_by_package": self_time_by_package(entries),
            }
    summary = summarize(samples)
    worst = max(summary[name]["ratio_to_baseline"] for name in FUNCTIONS)
    importtime_note = f"median of {importtime_runs} runs under -X importtime (slower than plain)"
    return {
        "runs": runs,
        "method": (
            "median over fresh processes of import app.py + first invocation (interpreter"
            " start-up excluded); targets interleaved per round; real loopback services:"
            " embedded PostgreSQL, moto S3 server, fake Titan at 0 ms; password auth"
            " (DATABASE_URL), not IAM"
        ),
        "sys_path": site_note,
        "code_dirs": code_note,
        "importtime_method": importtime_note,
        "events": EVENT_FILES,
        "goal_ratio": GOAL_RATIO,
        "summary": summary,
        "worst_ratio": worst,
        "passed": worst <= GOAL_RATIO,
        "compared_with": compare_revision,
        "before_after": compare_variants(summary, "before") if compare_revision else {},
        "bytecode": compare_variants(summary, NO_PYC) if NO_PYC in trees else {},
        "importtime": imports,
        "samples": samples,
    }


def print_table(result: Mapping[str, Any]) -> None:
    print(
        f"{'target':<26} {'median s':>9} {'import s':>9} {'invoke s':>9} {'ratio':>6}"
        f" {'peak RSS MiB':>13}"
    )
    for target, row in result["summary"].items():
        print(
            f"{target:<26} {row['median_total_s']:>9.3f} {row['median_import_s']:>9.3f}"
            f" {row['median_invoke_s']:>9.3f} {row['ratio_to_baseline']:>5.2f}x"
            f" {row['peak_rss_mib']:>13.1f}"
        )
    print(f"worst ratio {result['worst_ratio']:.2f}x (goal <= {result['goal_ratio']}x)")
    for function, change in result.get("before_after", {}).items():
        print(
            f"  {function}: {change['before_s']:.3f} s ({change['before_ratio']:.2f}x) at"
            f" {result['compared_with']} -> {change['now_s']:.3f} s ({change['now_ratio']:.2f}x)"
            f" now, {change['change_percent']:+.1f}%"
        )
    for function, change in result.get("bytecode", {}).items():
        print(
            f"  {function}: {change[f'{NO_PYC}_s']:.3f} s ({change[f'{NO_PYC}_ratio']:.2f}x)"
            f" without .pyc -> {change['now_s']:.3f} s ({change['now_ratio']:.2f}x) with,"
            f" {change['change_percent']:+.1f}%"
        )
    print(f"code directories: {result.get('code_dirs')}")
    for target, found in result.get("importtime", {}).items():
        top = ", ".join(f"{p['package']} {p['self_ms']:.0f}" for p in found["self_by_package"][:6])
        print(f"  {target}: imports {found['total_import_ms']:.0f} ms; by package (ms): {top}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per target")
    parser.add_argument("--quick", action="store_true", help="3 runs (smoke test)")
    parser.add_argument("--no-importtime", action="store_true")
    parser.add_argument(
        "--venv", action="store_true", help="import from .venv instead of a Lambda-like sys.path"
    )
    parser.add_argument(
        "--compare", metavar="REV", help="also measure the functions and layer as of git REV"
    )
    parser.add_argument(
        "--no-pyc-too",
        action="store_true",
        help="also measure the deployed code without any .pyc (function@no-pyc)",
    )
    parser.add_argument(
        "--writable",
        action="store_true",
        help="import from the installed directories, .pyc cached between runs (not as on Lambda)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = run(
        runs=3 if args.quick else args.runs,
        importtime=not args.no_importtime,
        lambda_like=not args.venv,
        compare_revision=args.compare,
        read_only=not args.writable,
        no_pyc_too=args.no_pyc_too,
    )
    result["seconds"] = round(time.perf_counter() - started, 1)
    write_json(RESULT_FILE, result)
    print_table(result)
    print(f"written to {RESULT_FILE.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
