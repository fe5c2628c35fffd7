"""Command line: ``run`` (like ``sam local start-api`` plus S3 and a database), ``invoke``
(like ``sam local invoke``), ``demo`` (one-shot, for CI) and ``openapi`` (regenerate/check)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from .runtime import EnvVarsError, read_env_vars_file
from .template import TemplateError

if TYPE_CHECKING:
    from .system import LocalOptions

REPO_ROOT = Path(__file__).resolve().parents[2]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _stop_on_sigterm() -> None:
    """SIGTERM/SIGHUP end the runner like Ctrl-C: everything is stopped on the way out."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)
    # A shell that starts a job in the background ignores SIGINT for it; Ctrl-C must still work.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-t",
        "--template",
        type=Path,
        default=REPO_ROOT / "template.yaml",
        help="SAM template (default: template.yaml)",
    )
    parser.add_argument(
        "-n",
        "--env-vars",
        type=Path,
        default=None,
        help='JSON like sam local: {"FunctionLogicalId": {"VAR": "v"}, "Parameters": {...}}',
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("FLEX_LOCAL_DATABASE_URL"),
        help="use this PostgreSQL (with pgvector) instead of the embedded one",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.local", description="Run the flex backend locally, no Docker."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="database + S3 + samples + the REST API; Ctrl-C stops")
    _common(run)
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("-p", "--port", type=int, default=3000, help="API port (0: any free port)")
    run.add_argument("--s3-port", type=int, default=0, help="moto S3 port (default: any free)")
    run.add_argument(
        "--data-dir",
        type=Path,
        default=REPO_ROOT / ".local" / "pgdata",
        help="embedded PostgreSQL data directory, kept between runs (default: .local/pgdata)",
    )
    run.add_argument("--no-samples", action="store_true", help="do not upload the samples")

    invoke = commands.add_parser("invoke", help="invoke one function with an event file")
    _common(invoke)
    invoke.add_argument("function", help="logical id (SearchFunction) or code dir (search)")
    invoke.add_argument("-e", "--event", required=True, help="event JSON file, or - for stdin")
    invoke.add_argument(
        "--data-dir",
        type=Path,
        default=REPO_ROOT / ".local" / "pgdata",
        help="embedded PostgreSQL data directory (shared with run)",
    )

    demo = commands.add_parser("demo", help="one-shot end-to-end demo; exit 0 when it all works")
    _common(demo)

    contract = commands.add_parser(
        "contract", help="schemathesis against the local API (arguments after --)"
    )
    _common(contract)
    contract.add_argument("--schemathesis", type=Path, required=True, help="its executable")
    contract.add_argument(
        "--document", type=Path, default=REPO_ROOT / "openapi.json", help="the OpenAPI document"
    )
    contract.add_argument(
        "--api-log",
        type=Path,
        default=REPO_ROOT / ".local" / "contract" / "api.log",
        help="where the API's request lines and the functions' warnings go",
    )
    contract.add_argument("arguments", nargs=argparse.REMAINDER, help="for `schemathesis run`")

    examples = commands.add_parser(
        "api-examples", help="real answers of the local API for the reference page"
    )
    _common(examples)
    examples.add_argument(
        "-o", "--output", type=Path, default=REPO_ROOT / "docs" / "api-examples.json"
    )

    openapi = commands.add_parser("openapi", help="write openapi.json from the API functions")
    openapi.add_argument("-t", "--template", type=Path, default=REPO_ROOT / "template.yaml")
    openapi.add_argument("-o", "--output", type=Path, default=REPO_ROOT / "openapi.json")
    openapi.add_argument("--check", action="store_true", help="fail if the file is stale")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    try:
        if args.command == "run":
            return command_run(args)
        if args.command == "invoke":
            return command_invoke(args)
        if args.command == "demo":
            return command_demo(args)
        if args.command == "contract":
            return command_contract(args)
        if args.command == "api-examples":
            return command_api_examples(args)
        return command_openapi(args)
    except (TemplateError, EnvVarsError) as exc:
        _log(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        _log("interrupted")
        return 130


# ---------------------------------------------------------------------- run
def _curl_examples(api_url: str, job_id: int | None, bucket: str, s3_endpoint: str) -> list[str]:
    search = json.dumps({"query": "Python backend engineer", "top_k": 3})
    korean = json.dumps({"query": "머신러닝 엔지니어", "top_k": 3}, ensure_ascii=False)
    hybrid = json.dumps({"query": "Appium", "top_k": 3, "mode": "hybrid"})
    interview = json.dumps({"applicant_id": 1, "job_id": job_id or 1})
    lines = [
        f"curl -s -X POST {api_url}/search -H 'Content-Type: application/json'"
        f" -d {shlex.quote(search)}",
        f"curl -s -X POST {api_url}/search -H 'Content-Type: application/json'"
        f" -d {shlex.quote(korean)}",
        f"curl -s -X POST {api_url}/search -H 'Content-Type: application/json'"
        f" -d {shlex.quote(hybrid)}",
        f"curl -s {api_url}/jobs/{job_id or 1}",
        f"curl -s -X POST {api_url}/interviews -H 'Content-Type: application/json'"
        f" -d {shlex.quote(interview)}",
        f"curl -s '{api_url}/jobs/{job_id or 1}/applicants?limit=3'",
        f"curl -s {api_url}/jobs/{job_id or 1}/insights",
        f"curl -s '{api_url}/jobs/{job_id or 1}/questions/suggested?top_k=3'",
        f"AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local aws --endpoint-url {s3_endpoint}"
        f" s3 cp my-job.txt 's3://{bucket}/jobs/42/my-job.txt'   # ingested within a second",
    ]
    return lines


def command_run(args: argparse.Namespace) -> int:
    from .system import LocalOptions, LocalSystem, list_jobs, running_state

    _stop_on_sigterm()
    if not args.database_url and (other := running_state(args.data_dir)) is not None:
        # A second run would empty the database the first one is serving.
        _log(f"error: the local system is already running (pid {other['pid']}); stop it first")
        return 1
    options = LocalOptions(
        template_path=args.template,
        data_dir=None if args.database_url else args.data_dir,
        database_url=args.database_url,
        api_host=args.host,
        api_port=args.port,
        s3_port=args.s3_port,
        env_vars=read_env_vars_file(args.env_vars),
        samples_dir=None if args.no_samples else REPO_ROOT / "devtools" / "samples",
        write_state_file=True,
        fresh_state=True,
    )
    system = LocalSystem(options, log=_log)
    try:
        try:
            system.start()
        except OSError as exc:
            if exc.errno == 98:  # EADDRINUSE
                _log(f"error: port {args.port} is in use; try --port 0 (any free port)")
                return 1
            raise
        assert system.api is not None
        assert system.moto is not None
        jobs = list_jobs(system.database_url)
        bucket = next(iter(system.template.buckets.values()))
        api_url = system.api.url
        out = [
            "",
            "flex backend is running locally (Ctrl-C stops everything)",
            f"  API       {api_url}",
            f"  OpenAPI   {api_url}/openapi.json    Swagger UI: {api_url}/swagger",
            f"  S3        {system.moto.endpoint}    bucket {bucket.name}",
            f"  Database  {system.database_url}",
            f"  Jobs      {len(jobs)} searchable: "
            + ", ".join(f"{job.id} {job.title[:30]!r}" for job in jobs[:6])
            + (" ..." if len(jobs) > 6 else ""),
            "",
            "Routes (template.yaml):",
        ]
        for route in system.template.routes:
            out.append(f"  {route.method:<6} {route.path:<28} -> {route.function}")
        out += ["", "Try:"]
        out += [
            "  " + line
            for line in _curl_examples(
                api_url, jobs[0].id if jobs else None, bucket.name, system.moto.endpoint
            )
        ]
        out.append("")
        print("\n".join(out), flush=True)
        forever = threading.Event()
        while not forever.wait(3600):
            pass
    except KeyboardInterrupt:
        _log("\nstopping: API, S3, database ...")
    finally:
        system.stop()
        _log("stopped")
    return 0


# ---------------------------------------------------------------------- invoke
def command_invoke(args: argparse.Namespace) -> int:
    from .runtime import InvocationError
    from .system import LocalOptions, LocalSystem, running_state

    raw = sys.stdin.read() if args.event == "-" else Path(args.event).read_text(encoding="utf-8")
    try:
        event: Any = json.loads(raw)
    except ValueError as exc:
        _log(f"error: {args.event} is not valid JSON: {exc}")
        return 2
    env_vars = read_env_vars_file(args.env_vars)
    state = running_state(args.data_dir)
    options = LocalOptions(
        template_path=args.template,
        data_dir=args.data_dir,
        database_url=args.database_url or (state or {}).get("database_url"),
        s3_endpoint=(state or {}).get("s3_endpoint"),
        serve_api=False,
        notifications=False,
        env_vars=env_vars,
    )
    system = LocalSystem(options, log=_log)
    if state is not None:
        _log(f"using the running local system (pid {state['pid']}): its database and S3")
    system.start()
    try:
        assert system.runner is not None
        started = time.monotonic()
        try:
            result = system.runner.invoke(args.function, event)
        except InvocationError as error:
            print(
                json.dumps(
                    {k: v for k, v in error.payload.items() if k != "stackTrace"},
                    indent=2,
                    ensure_ascii=False,
                )
            )
            _log("".join(error.payload["stackTrace"]))
            return 1
        _log(f"{args.function}: {(time.monotonic() - started) * 1000:.0f} ms")
        print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
        return 0
    finally:
        system.stop()


# ---------------------------------------------------------------------- demo
def _throwaway_system(args: argparse.Namespace, *, watch_s3: bool = True) -> LocalOptions:
    """A system for one run (demo, contract, api-examples): temporary directories, a free
    port, and the functions' logs at WARNING (their INFO lines would drown the run's output)."""
    from .system import LocalOptions

    return LocalOptions(
        template_path=args.template,
        data_dir=None,
        database_url=args.database_url,
        api_port=0,
        env_vars=read_env_vars_file(args.env_vars),
        watch_s3=watch_s3,
        extra_overrides={"POWERTOOLS_LOG_LEVEL": "WARNING"},
    )


def command_demo(args: argparse.Namespace) -> int:
    from .demo import DemoFailure, run_demo

    _stop_on_sigterm()
    options = _throwaway_system(args)
    try:
        run_demo(lambda line: print(line, flush=True), options)
    except DemoFailure as exc:
        _log(f"\nDEMO FAILED: {exc}")
        return 1
    return 0


# ---------------------------------------------------------------------- contract
def command_contract(args: argparse.Namespace) -> int:
    from .contract import run_contract

    _stop_on_sigterm()
    options = _throwaway_system(args)
    arguments = args.arguments[1:] if args.arguments[:1] == ["--"] else args.arguments
    args.api_log.parent.mkdir(parents=True, exist_ok=True)
    with args.api_log.open("w", encoding="utf-8") as api_log:
        status = run_contract(args.schemathesis, args.document, arguments, options, _log, api_log)
    _log(f"contract: the API's log is in {args.api_log}")
    return status


# ---------------------------------------------------------------------- api-examples
def command_api_examples(args: argparse.Namespace) -> int:
    from .api_examples import write_examples

    options = _throwaway_system(args, watch_s3=False)
    write_examples(options, _log, args.output)
    _log("now `make openapi` puts them in openapi.json")
    return 0


# ---------------------------------------------------------------------- openapi
def command_openapi(args: argparse.Namespace) -> int:
    from .openapi import merged_document, render, undocumented_routes, write
    from .runtime import FunctionRunner, local_overrides
    from .system import ensure_layers_importable
    from .template import load_template

    template = load_template(args.template)
    ensure_layers_importable(template)
    # Importing the handlers needs a valid configuration, never a connection.
    runner = FunctionRunner(
        template, local_overrides("postgresql://local@127.0.0.1:1/not_connected", None)
    )
    document = merged_document(template, runner)
    for problem in undocumented_routes(template, document):
        _log(f"warning: {problem}")
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
        if current != render(document):
            _log(f"{args.output.name} is stale: run `make openapi`")
            return 1
        _log(f"{args.output.name} is up to date")
        return 0
    changed = write(args.output, document)
    _log(f"{args.output.name} {'written' if changed else 'unchanged'}")
    return 0
