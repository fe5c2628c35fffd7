"""`make scan` (devtools.template_scan): suppressions, skips carried to what SAM generates, and
how checkov's report becomes a verdict. checkov itself and SAM's translator run in `make scan`
(CI); here their report is given in checkov's JSON shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devtools import template_scan as scan

DEPLOYED = Path("/build/scan/template.translated.json")
WRITTEN = Path("/repo/template.yaml")


def skip(check_id: str, comment: Any = "why it does not apply") -> dict[str, Any]:
    return {"id": check_id, "comment": comment}


def sam_template() -> dict[str, Any]:
    return {
        "Resources": {
            "FlexApi": {
                "Type": "AWS::Serverless::Api",
                "Metadata": {"checkov": {"skip": [skip("CKV_AWS_120")]}},
            },
            "Search": {"Type": "AWS::Serverless::Function"},
            "SearchFunction": {
                "Type": "AWS::Serverless::Function",
                "Metadata": {
                    "BuildMethod": "makefile",
                    "checkov": {"skip": [skip("CKV_AWS_116")]},
                },
            },
            "SearchLogGroup": {"Type": "AWS::Logs::LogGroup"},
            "Bucket": {
                "Type": "AWS::S3::Bucket",
                "Metadata": {"checkov": {"skip": [skip("CKV_AWS_18")]}},
            },
        }
    }


def translated_template() -> dict[str, Any]:
    return {
        "Resources": {
            "FlexApi": {"Type": "AWS::ApiGateway::RestApi"},
            "FlexApiStage": {"Type": "AWS::ApiGateway::Stage"},
            "FlexApiDeployment0a1b2c": {"Type": "AWS::ApiGateway::Deployment"},
            "SearchFunction": {"Type": "AWS::Lambda::Function", "Metadata": {"BuildMethod": "x"}},
            "SearchFunctionRole": {"Type": "AWS::IAM::Role"},
            "SearchRole": {"Type": "AWS::IAM::Role"},
            "SearchLogGroup": {"Type": "AWS::Logs::LogGroup"},
            "Bucket": {"Type": "AWS::S3::Bucket"},
        }
    }


def check(
    check_id: str, resource: str, file: Path, result: str = "FAILED", comment: str | None = None
) -> dict[str, Any]:
    """One entry of checkov's JSON report (the fields the scan reads)."""
    check_result: dict[str, Any] = {"result": result}
    if comment is not None:
        check_result["suppress_comment"] = comment
    return {
        "check_id": check_id,
        "check_name": f"Ensure {check_id} holds",
        "check_result": check_result,
        "resource": resource,
        "file_abs_path": str(file),
    }


def report(
    failed: list[dict[str, Any]], skipped: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "check_type": "cloudformation",
        "results": {
            "passed_checks": [],
            "failed_checks": failed,
            "skipped_checks": skipped or [],
            "parsing_errors": [],
        },
        "summary": {"checkov_version": "3.3.30"},
    }


# --------------------------------------------------------------------------- suppressions


def test_a_template_whose_every_skip_has_a_check_id_and_a_reason_passes() -> None:
    assert scan.suppression_problems(sam_template()) == []


@pytest.mark.parametrize(
    ("metadata", "complaint"),
    [
        ({"checkov": {"skip": [{"id": "CKV_AWS_18"}]}}, "no comment"),
        ({"checkov": {"skip": [skip("CKV_AWS_18", "  ")]}}, "no comment"),
        ({"checkov": {"skip": [skip("CKV_AWS_18", "first line\nsecond")]}}, "one line"),
        ({"checkov": {"skip": [skip("CKV_AWS_1B")]}}, "not a checkov check id"),
        ({"checkov": {"skip": [{"id": "CKV_AWS_18", "reason": "x"}]}}, "list of {id, comment}"),
        ({"checkov": {"skip": "CKV_AWS_18"}}, "list of {id, comment}"),
        ({"checkov": {"skip": ["CKV_AWS_18"]}}, "list of {id, comment}"),
    ],
)
def test_a_skip_without_a_one_line_reason_or_a_check_id_is_refused(
    metadata: dict[str, Any], complaint: str
) -> None:
    template = {"Resources": {"Bucket": {"Type": "AWS::S3::Bucket", "Metadata": metadata}}}

    [problem] = scan.suppression_problems(template)

    assert problem.startswith("Bucket: Metadata.checkov.skip")
    assert complaint in problem


# --------------------------------------------------------------------------- SAM translation


def test_resources_sam_generates_inherit_the_skips_of_the_sam_resource_they_come_from() -> None:
    template, translated = sam_template(), translated_template()

    owners = scan.carry_skips(template, translated)

    # The longest SAM logical id wins: SearchFunctionRole comes from SearchFunction, not Search.
    assert owners == {
        "FlexApiStage": "FlexApi",
        "FlexApiDeployment0a1b2c": "FlexApi",
        "SearchFunctionRole": "SearchFunction",
        "SearchRole": "Search",
    }
    resources = translated["Resources"]
    assert resources["FlexApiStage"]["Metadata"] == {"checkov": {"skip": [skip("CKV_AWS_120")]}}
    assert resources["SearchFunctionRole"]["Metadata"]["checkov"]["skip"] == [skip("CKV_AWS_116")]
    # A resource of the template keeps what the translation gave it; one without skips gets none.
    assert resources["SearchFunction"]["Metadata"] == {"BuildMethod": "x"}
    assert "Metadata" not in resources["SearchRole"]
    assert "Metadata" not in resources["Bucket"]


def test_a_plain_cloudformation_resource_owns_nothing_sam_generates() -> None:
    template = {"Resources": {"Bucket": {"Type": "AWS::S3::Bucket"}}}

    assert scan.sam_owner("BucketPolicy", template) is None


# --------------------------------------------------------------------------- verdict


def test_a_finding_is_reported_once_though_both_documents_show_it() -> None:
    owners = {"FlexApiStage": "FlexApi", "MigrateFunctionRole": "MigrateFunction"}
    found = scan.results(
        report(
            failed=[
                check("CKV_AWS_53", "AWS::S3::Bucket.JobsBucket", WRITTEN),
                check("CKV_AWS_53", "AWS::S3::Bucket.JobsBucket", DEPLOYED),
                check("CKV_AWS_120", "AWS::Serverless::Api.FlexApi", WRITTEN),
                check("CKV_AWS_120", "AWS::ApiGateway::Stage.FlexApiStage", DEPLOYED),
                check("CKV_AWS_111", "AWS::IAM::Role.MigrateFunctionRole", DEPLOYED),
            ]
        ),
        DEPLOYED,
    )

    failures = scan.unexplained(found, owners)

    assert [(f.check_id, f.logical_id, f.deployed) for f in failures] == [
        ("CKV_AWS_53", "JobsBucket", False),
        ("CKV_AWS_120", "FlexApi", False),
        ("CKV_AWS_111", "MigrateFunctionRole", True),
    ]
    assert str(scan.counts(found, deployed=False)) == "0 passed, 2 failed, 0 skipped"
    assert str(scan.counts(found, deployed=True)) == "0 passed, 3 failed, 0 skipped"


def test_a_failure_in_a_generated_resource_points_at_the_sam_resource_to_fix() -> None:
    template_text = "Resources:\n  JobsBucket:\n    Type: x\n  MigrateFunction:\n    Type: y\n"
    [failure] = scan.unexplained(
        scan.results(
            report([check("CKV_AWS_111", "AWS::IAM::Role.MigrateFunctionRole", DEPLOYED)]),
            DEPLOYED,
        ),
        {},
    )

    text = scan.render_failure(
        failure, {"MigrateFunctionRole": "MigrateFunction"}, "template.yaml", template_text
    )

    assert text.splitlines() == [
        "FAILED CKV_AWS_111  Ensure CKV_AWS_111 holds",
        "  MigrateFunctionRole (AWS::IAM::Role), generated by SAM from MigrateFunction"
        "  template.yaml:4",
    ]


def test_a_skip_that_suppresses_nothing_is_reported_as_stale_or_misspelt() -> None:
    template = sam_template()
    owners = scan.carry_skips(template, translated_template())
    found = scan.results(
        report(
            failed=[],
            skipped=[
                check("CKV_AWS_120", "AWS::ApiGateway::Stage.FlexApiStage", DEPLOYED, "SKIPPED"),
                check("CKV_AWS_116", "AWS::Lambda::Function.SearchFunction", DEPLOYED, "SKIPPED"),
            ],
        ),
        DEPLOYED,
    )

    problems = scan.unmatched_skips(template, found, owners)

    # FlexApi's skip applied to its stage, SearchFunction's to itself; Bucket's to nothing.
    assert len(problems) == 1
    assert problems[0].startswith("Bucket: the skip of CKV_AWS_18 matches no check")
