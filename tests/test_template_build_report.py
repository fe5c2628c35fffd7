"""`make layer-size` (devtools.sam_build_report) on small fake SAM build outputs."""

from __future__ import annotations

import importlib.util
import py_compile
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


def compile_unchecked(source: Path) -> None:
    py_compile.compile(
        str(source),
        cfile=str(source.parent / "__pycache__" / f"{source.stem}.cpython-311.pyc"),
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        doraise=True,
    )


def test_the_report_knows_the_python311_runtimes_bytecode() -> None:
    # The tests run on the runtime's CPython minor: its magic number is the one we check for.
    assert report.PYC_MAGIC == importlib.util.MAGIC_NUMBER


def test_modules_with_unchecked_hash_bytecode_of_their_source_pass(build_dir: Path) -> None:
    module = build_dir / "SearchFunction" / "app.py"
    module.write_text("ANSWER = 42\n")
    compile_unchecked(module)

    artifacts = report.scan(build_dir)

    search = next(a for a in artifacts if a.name == "SearchFunction")
    assert (search.modules, search.without_bytecode) == (1, ())
    assert report.problems(artifacts, "SharedLayer", 10_000, ran_with_version) == []


@pytest.mark.parametrize("defect", ["no pyc", "timestamp pyc", "pyc of an older source"])
def test_a_module_the_runtime_would_compile_again_or_run_stale_fails(
    build_dir: Path, defect: str
) -> None:
    module = build_dir / "SharedLayer" / "python" / "flex_shared" / "db.py"
    module.parent.mkdir()
    module.write_text("ENGINE = None\n")
    if defect == "timestamp pyc":
        py_compile.compile(
            str(module),
            cfile=str(module.parent / "__pycache__" / "db.cpython-311.pyc"),
            invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP,
            doraise=True,
        )
    elif defect == "pyc of an older source":
        compile_unchecked(module)
        module.write_text("ENGINE = 'changed after the build'\n")

    found = report.problems(report.scan(build_dir), "SharedLayer", 10_000, ran_with_version)

    assert found == [
        "SharedLayer: 1 of 1 modules without an unchecked-hash cpython-311.pyc of their source"
        " (e.g. python/flex_shared/db.py): build with BuildMethod: makefile and"
        " devtools/lambda_build.mk"
    ]
