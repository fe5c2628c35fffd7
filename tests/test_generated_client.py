"""A client generated from ``openapi.json`` by a standard generator (openapi-python-client,
pinned in requirements.txt) drives a whole flow through the local API, as a recruiters' tool
would: search, open an interview, start it, post a result, read the summary, search again.

The client is generated here, from the committed document, so a document a generator cannot
read, or one that disagrees with what the API answers, fails this test."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from devtools.local.system import LocalOptions, LocalSystem
from tests.conftest import REPO_ROOT, fresh_database

PACKAGE = "flex_api_client"
GENERATOR_CONFIG = f"""\
project_name_override: flex-api-client
package_name_override: {PACKAGE}
post_hooks: []
"""


@pytest.fixture(scope="module")
def client_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    root = tmp_path_factory.mktemp("generated")
    config = root / "config.yaml"
    config.write_text(GENERATOR_CONFIG, encoding="utf-8")
    generated = subprocess.run(
        [
            str(Path(sys.executable).with_name("openapi-python-client")),
            "generate",
            "--path",
            str(REPO_ROOT / "openapi.json"),
            "--config",
            str(config),
            "--meta",
            "none",
            "--output-path",
            str(root / PACKAGE),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    output = generated.stdout + generated.stderr
    # The generator skips what it cannot read and says so (exit 0): nothing may be skipped.
    assert generated.returncode == 0, output
    assert "Warning" not in output, output
    assert "Unable" not in output, output
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


@pytest.fixture(scope="module")
def system() -> Iterator[LocalSystem]:
    with fresh_database() as database_url:
        options = LocalOptions(
            database_url=database_url,
            data_dir=None,
            api_port=0,
            samples_dir=REPO_ROOT / "devtools" / "samples",
            watch_s3=False,
            extra_overrides={"POWERTOOLS_LOG_LEVEL": "WARNING"},
        )
        with LocalSystem(options, log=lambda message: None) as running:
            yield running


def test_a_generated_client_runs_an_interview_end_to_end(
    client_package: ModuleType, system: LocalSystem
) -> None:
    assert system.api is not None
    models = _module("models")
    search = _module("api.search.search")
    create_interview = _module("api.interviews.create_interview")
    get_interview = _module("api.interviews.get_interview")
    update_interview = _module("api.interviews.update_interview")
    record_result = _module("api.interview_results.record_result")
    list_results = _module("api.interview_results.list_results")
    client = client_package.Client(base_url=system.api.url, raise_on_unexpected_status=True)

    # A recruiter's tool finds the job by what it asks for
    found = search.sync(
        client=client, body=models.SearchRequest(query="Python backend engineer", top_k=3)
    )
    assert isinstance(found, models.SearchResponse)
    assert len(found.results) == 3
    best = found.results[0]
    assert "Backend" in best.job_title
    assert -1.0 <= best.similarity <= 1.0

    # It opens an interview for that job: 201, where the session lives, the session itself
    created = create_interview.sync_detailed(
        client=client, body=models.CreateInterviewRequest(applicant_id=7, job_id=best.job_id)
    )
    assert created.status_code == 201
    session = created.parsed
    assert isinstance(session, models.InterviewOut)
    assert session.status is models.InterviewStatus.PENDING
    assert created.headers["location"] == f"/interviews/{session.id}"

    # It starts the interview
    started = update_interview.sync(
        client=client,
        interview_id=session.id,
        body=models.UpdateInterviewRequest(status=models.InterviewStatus.IN_PROGRESS),
    )
    assert isinstance(started, models.InterviewOut)
    assert started.status is models.InterviewStatus.IN_PROGRESS
    assert isinstance(started.started_at, datetime)

    # It posts the analysis of one answer (the seed's example scores)
    keywords = models.ResultRequestKeywordsType0.from_dict(
        {"technical": ["Python", "Django"], "soft_skills": ["teamwork"]}
    )
    posted = record_result.sync_detailed(
        client=client,
        interview_id=session.id,
        body=models.ResultRequest(
            question_id=1,
            question_text="Tell me about your experience with Python",
            logic_score=85.5,
            relevance_score=90.0,
            technical_score=88.0,
            communication_score=82.0,
            keywords=keywords,
            strengths=["Strong Python expertise"],
        ),
    )
    assert posted.status_code == 201
    assert isinstance(posted.parsed, models.ResultOut)
    assert posted.parsed.overall_score == pytest.approx(86.375)

    # It reads the results and their summary
    summary = list_results.sync(client=client, interview_id=session.id)
    assert isinstance(summary, models.InterviewResultsOut)
    assert [result.question_id for result in summary.results] == [1]
    assert summary.summary.count == 1
    assert summary.summary.average_overall_score == pytest.approx(86.375)
    assert summary.summary.keyword_frequencies.overall.to_dict() == {
        "Django": 1,
        "Python": 1,
        "teamwork": 1,
    }

    # It searches again, in hybrid mode, within the interview's job only
    within = search.sync(
        client=client,
        body=models.SearchRequest(
            query="Python", top_k=2, mode=models.SearchRequestMode.HYBRID, job_id=best.job_id
        ),
    )
    assert isinstance(within, models.SearchResponse)
    assert within.results
    assert {result.job_id for result in within.results} == {best.job_id}

    # And an error comes back as the documented error model, not an exception or a dict
    missing = get_interview.sync_detailed(client=client, interview_id=session.id + 1000)
    assert missing.status_code == 404
    assert isinstance(missing.parsed, models.ErrorResponse)
    assert missing.parsed.error.code == "not_found"
