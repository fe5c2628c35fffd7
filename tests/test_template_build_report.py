"""`make layer-size` (devtools.sam_build_report) on small fake SAM build outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from devtools import sam_build_report as report

TESTED = {"sqlalchemy": "2.1.9", "pydantic": "2.14.3", "alembic": "1.20.1"}


def ran_with_version(name: str) -> str | None:
    return TESTED.get(name)


def make_artifact(root: Path, name: str, dists: dict[str, str], payload_bytes: int) -> None:
    base = root / name / "python" if name.endswith("Layer") else root / name
    base.mkdir(parents=True)
    for dist, version in dists.items():
        (base / f"{dist}-{version}.dist-info").mkdir()
        (base / f"{dist}-{version}.dist-info" / "METADATA").write_text(f"Name: {dist}\n")
    (base / "payload.bin").write_bytes(b"\0" * payload_bytes)


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    make_artifact(tmp_path, "SharedLayer", {"SQLAlchemy": "2.1.9", "pydantic": "2.14.3"}, 3000)
    make_artifact(tmp_path, "MigrateFunction", {"alembic": "1.20.1"}, 500)
    make_artifact(tmp_path, "SearchFunction", {}, 100)
    return tmp_path


def test_a_clean_build_passes_and_every_artifact_is_measured(build_dir: Path) -> None:
    artifacts = report.scan(build_dir)

    assert [a.name for a in artifacts] == ["MigrateFunction", "SearchFunction", "SharedLayer"]
    layer = artifacts[-1]
    assert layer.distributions == {"sqlalchemy": "2.1.9", "pydantic": "2.14.3"}
    assert layer.size_bytes >= 3000
    assert report.problems(artifacts, "SharedLayer", 10_000, ran_with_version) == []
    table = report.render(artifacts)
    assert "SharedLayer" in table
    assert "MigrateFunction" in table


def test_a_layer_at_the_budget_fails(build_dir: Path) -> None:
    artifacts = report.scan(build_dir)
    layer_size = next(a.size_bytes for a in artifacts if a.name == "SharedLayer")

    found = report.problems(artifacts, "SharedLayer", layer_size, ran_with_version)

    assert len(found) == 1
    assert "over the" in found[0]


def test_boto3_in_the_layer_and_unran_with_versions_fail(tmp_path: Path) -> None:
    make_artifact(tmp_path, "SharedLayer", {"boto3": "1.44.5", "SQLAlchemy": "2.0.0"}, 10)

    found = report.problems(report.scan(tmp_path), "SharedLayer", 10_000, ran_with_version)

    assert any("boto3" in problem and "must not be deployed" in problem for problem in found)
    assert any("sqlalchemy 2.0.0 but the tests ran with 2.1.9" in p for p in found)


def test_a_missing_build_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report.main([str(tmp_path / "nothing")]) == 1
    assert "make sam-build" in capsys.readouterr().err
    (tmp_path / "SearchFunction").mkdir()
    assert report.problems(report.scan(tmp_path), "SharedLayer", 10, ran_with_version) == [
        "no SharedLayer in the build: run sam build first"
    ]
