"""The whole local system: embedded PostgreSQL (migrated), S3 on moto with the template's
buckets and their notifications bridged to the functions, the sample job descriptions
ingested, and the template's REST API on localhost. Stopping it stops all it started."""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from devtools.apigw import rest_event
from devtools.lambda_context import FakeLambdaContext

from .database import EmbeddedPostgres, ensure_database, migrate_to_head, usable_data_dir
from .http_api import LocalApiServer, RouteTable, parse_proxy_response
from .openapi import ApiDocs, merged_document
from .runtime import FunctionRunner, local_overrides
from .s3 import MotoS3, NotificationBridge, create_bucket, s3_client
from .samples import SampleUpload, create_sample_interviews, find_samples, upload_samples
from .template import Template, load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = REPO_ROOT / ".local" / "pgdata"
DATABASE_NAME = "flex"


def ensure_layers_importable(template: Template) -> None:
    """The runner itself uses the layer (database URL parsing, migrations)."""
    for function in template.functions.values():
        for directory in function.layer_dirs:
            if str(directory) not in sys.path:
                sys.path.insert(0, str(directory))


@dataclass
class LocalOptions:
    template_path: Path = REPO_ROOT / "template.yaml"
    data_dir: Path | None = DEFAULT_DATA_DIR
    """Embedded PostgreSQL data dir; None with ``database_url`` set: use that database instead."""
    database_url: str | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 3000
    s3_port: int = 0
    s3_endpoint: str | None = None
    """Use this S3 (a running ``run``'s) instead of starting moto; nothing is uploaded."""
    env_vars: dict[str, dict[str, str]] = field(default_factory=dict)
    extra_overrides: dict[str, str] = field(default_factory=dict)
    """Applied to every function after the local overrides (the demo quiets the logs)."""
    samples_dir: Path | None = REPO_ROOT / "devtools" / "samples"
    serve_api: bool = True
    notifications: bool = True
    """Deliver S3 notifications (samples ingested through them); off: samples only uploaded."""
    watch_s3: bool = True
    poll_interval_seconds: float = 0.3
    write_state_file: bool = False
    """Record endpoints in ``runner.json`` beside the data directory (``invoke`` reads it)."""
    fresh_state: bool = False
    """Start the embedded database empty, as S3 (moto, in memory) always starts: every job
    is then backed by an object of the local bucket (README "Local state"). A database given
    by ``database_url`` is never emptied."""

    @property
    def state_file(self) -> Path:
        return state_file_for(self.data_dir or DEFAULT_DATA_DIR)


def state_file_for(data_dir: Path) -> Path:
    return data_dir.parent / "runner.json"


class LocalSystem:
    def __init__(self, options: LocalOptions, log: Callable[[str], None] | None = None) -> None:
        self.options = options
        self.log = log or (lambda message: print(message, file=sys.stderr, flush=True))
        self.template = load_template(options.template_path)
        ensure_layers_importable(self.template)
        self.postgres: EmbeddedPostgres | None = None
        self.database_url = ""
        self.revision: str | None = None
        self.moto: MotoS3 | None = None
        self.s3: Any = None
        self.s3_endpoint = ""
        self.runner: FunctionRunner | None = None
        self.bridge: NotificationBridge | None = None
        self.api: LocalApiServer | None = None
        self.samples: list[SampleUpload] = []
        self._temp_dir: tempfile.TemporaryDirectory[str] | None = None

    # ------------------------------------------------------------------ start
    def start(self) -> LocalSystem:
        try:
            self._start_database()
            self._start_s3()
            self.runner = FunctionRunner(
                self.template,
                {
                    **local_overrides(self.database_url, self.s3_endpoint),
                    **self.options.extra_overrides,
                },
                self.options.env_vars,
                log=self.log,
            )
            if self.options.notifications:
                self._start_notifications()
            self._ingest_samples()
            self._create_sample_interviews()
            if self.options.serve_api:
                self._start_api()
            if self.options.write_state_file:
                self._write_state()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_database(self) -> None:
        if self.options.database_url:
            self.database_url = self.options.database_url
        else:
            data_dir = self.options.data_dir
            if data_dir is None:
                self._temp_dir = tempfile.TemporaryDirectory(prefix="flex-local-")
                data_dir = Path(self._temp_dir.name) / "pgdata"
            data_dir = usable_data_dir(data_dir)
            self.log(f"database: embedded PostgreSQL with data in {data_dir}")
            self.postgres = EmbeddedPostgres.start(data_dir, self.log)
            fresh = self.options.fresh_state
            self.database_url = ensure_database(
                self.postgres.admin_url(), DATABASE_NAME, fresh=fresh
            )
            if fresh:
                self.log(f"database: {DATABASE_NAME} emptied (S3 starts empty too)")
        self.revision = migrate_to_head(REPO_ROOT, self.database_url)
        self.log(f"database: migrated to {self.revision}")

    def _start_s3(self) -> None:
        if self.options.s3_endpoint:  # another runner's S3: use it as it is
            self.s3_endpoint = self.options.s3_endpoint
            self.s3 = s3_client(self.s3_endpoint)
            self.log(f"s3: using {self.s3_endpoint}")
            return
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request
        self.moto = MotoS3(self.options.s3_port)
        endpoint = self.moto.start()
        # moto's backends live in this process; start from an empty S3 like a new server.
        reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(reset, timeout=10) as response:  # noqa: S310 (localhost)
            response.read()
        self.s3_endpoint = endpoint
        self.s3 = s3_client(endpoint)
        for bucket in self.template.buckets.values():
            create_bucket(self.s3, bucket)
        names = ", ".join(bucket.name for bucket in self.template.buckets.values())
        self.log(f"s3: moto server on {endpoint}, bucket(s) {names}")

    def _start_notifications(self) -> None:
        assert self.runner is not None
        runner = self.runner
        self.bridge = NotificationBridge(
            self.s3,
            self.template.buckets.values(),
            self.template.subscriptions,
            deliver=runner.invoke,
            interval_seconds=self.options.poll_interval_seconds,
            log=self.log,
        )
        self.bridge.sync()  # whatever is already there is not news
        if self.options.watch_s3:
            self.bridge.start()

    def _ingest_samples(self) -> None:
        if self.options.samples_dir is None or not self.template.subscriptions or not self.moto:
            return
        bucket = self.template.buckets[self.template.subscriptions[0].bucket_resource]
        self.samples = find_samples(self.options.samples_dir)
        if not self.samples:
            return
        upload_samples(self.s3, bucket.name, self.samples)
        if self.bridge is None:
            self.log(f"s3: uploaded {len(self.samples)} sample job descriptions")
            return
        self.log(f"s3: uploaded {len(self.samples)} sample job descriptions; ingesting...")
        self.bridge.sync()

    def _create_sample_interviews(self) -> None:
        """Sample interviews for the sample jobs, once: a data directory that already holds
        interviews (an earlier run's) keeps them as they are."""
        if not self.samples or self.bridge is None:
            return
        if count_interviews(self.database_url):
            self.log("interviews: kept from an earlier run")
            return
        jobs = {job.source_key: job.id for job in list_jobs(self.database_url)}
        job_ids = {
            sample.path.name: jobs[sample.key] for sample in self.samples if sample.key in jobs
        }
        created = create_sample_interviews(self.call_api, job_ids)
        self.log(f"interviews: {created} sample interviews created through the interview API")

    def call_api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """``method path`` through the function the template routes it to, as the local API
        would (without HTTP): the status code and the JSON body."""
        assert self.runner is not None
        match = RouteTable(self.template.routes).match(method, path)
        if match is None:
            raise LookupError(f"no route for {method} {path} in the template")
        event = rest_event(
            method,
            path,
            body,
            resource=match.route.path,
            path_parameters=match.path_parameters or None,
        )
        status, _headers, raw = parse_proxy_response(
            self.runner.invoke(match.route.function, event)
        )
        return status, json.loads(raw) if raw else None

    def _start_api(self) -> None:
        assert self.runner is not None
        self.api = LocalApiServer(
            self.template.routes,
            self.template.stages,
            self.runner.invoke,
            host=self.options.api_host,
            port=self.options.api_port,
            extra_get=self._documentation,
            gateway_responses=self.template.gateway_responses,
            log=self.log,
        )
        self.api.start()

    def _write_state(self) -> None:
        self.options.state_file.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "pid": os.getpid(),
            "api_url": self.api.url if self.api else None,
            "s3_endpoint": self.s3_endpoint,
            "database_url": self.database_url,
        }
        self.options.state_file.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")

    # ------------------------------------------------------------------ documentation
    _api_docs: ApiDocs | None = None

    def _documentation(self, target: str) -> tuple[int, str, bytes] | None:
        """``/openapi.json`` and ``/swagger`` (``devtools.local.openapi.ApiDocs``)."""
        if self._api_docs is None:
            assert self.runner is not None
            self._api_docs = ApiDocs(merged_document(self.template, self.runner))
        split = urlsplit(target)
        query = {name: values[-1] for name, values in parse_qs(split.query).items()}
        event = rest_event("GET", split.path, query=query or None)
        status, headers, body = parse_proxy_response(
            self._api_docs.resolve(event, cast(Any, FakeLambdaContext(function_name="api-docs")))
        )
        if status == 404:
            return None
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        return status, content_type, body

    # ------------------------------------------------------------------ stop
    def stop(self) -> None:
        """Stop everything this system started, in reverse order; safe to call twice."""
        steps: list[tuple[str, Callable[[], None]]] = []
        if self.api is not None:
            steps.append(("api", self.api.stop))
        if self.bridge is not None:
            steps.append(("s3 notifications", self.bridge.stop))
        if self.moto is not None:
            steps.append(("s3", self.moto.stop))
        steps.append(("engine", _dispose_engine))
        if self.postgres is not None:
            steps.append(("database", self.postgres.stop))
        for name, step in steps:
            try:
                step()
            except Exception as exc:  # stop the rest anyway
                self.log(f"stopping {name} failed: {exc}")
        self.api = self.bridge = self.moto = self.postgres = None
        if self._temp_dir is not None:
            self._temp_dir.cleanup()
            self._temp_dir = None
        if self.options.write_state_file:
            self.options.state_file.unlink(missing_ok=True)

    def __enter__(self) -> LocalSystem:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _dispose_engine() -> None:
    try:
        from flex_shared import config, db
    except ImportError:
        return
    db.reset_engine()
    # The cached settings name this system's database: forget them with it, so whatever uses
    # the layer next in this process (tests) reads its own environment again.
    config.reset_settings()


@dataclass(frozen=True)
class JobRow:
    id: int
    company_id: int
    title: str
    source_key: str | None
    chunks: int


def list_jobs(database_url: str) -> list[JobRow]:
    """The jobs in search (not deleted), with their chunk counts."""
    from sqlalchemy import create_engine, text

    from flex_shared.database_url import parse_database_url

    url, connect_args = parse_database_url(database_url)
    engine = create_engine(url, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT j.id, j.company_id, j.title, j.source_key,"
                    " (SELECT count(*) FROM job_chunks c WHERE c.job_id = j.id)"
                    " FROM jobs j WHERE j.deleted_at IS NULL ORDER BY j.id"
                )
            ).all()
    finally:
        engine.dispose()
    return [JobRow(int(r[0]), int(r[1]), str(r[2]), r[3], int(r[4])) for r in rows]


def count_interviews(database_url: str) -> int:
    from sqlalchemy import create_engine, text

    from flex_shared.database_url import parse_database_url

    url, connect_args = parse_database_url(database_url)
    engine = create_engine(url, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(text("SELECT count(*) FROM interview_sessions")).scalar_one()
            )
    finally:
        engine.dispose()


def running_state(data_dir: Path = DEFAULT_DATA_DIR) -> dict[str, Any] | None:
    """The state of a ``run`` in progress (its S3 endpoint and database), if there is one."""
    try:
        state = json.loads(state_file_for(data_dir).read_text(encoding="utf-8"))
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if isinstance(state, dict) else None
