"""Security scan of template.yaml with checkov (``make scan``); any unexplained finding fails.

checkov reads the template twice: as written (SAM resources, Globals applied) and as SAM
translates it into what CloudFormation deploys, so the resources SAM generates (each function's
IAM role, the API's stage and deployment, permissions) are checked too; a wildcard in a
function's ``Policies`` only shows in its generated role.

A finding is fixed, or suppressed beside its resource with a one-line reason::

    Metadata:
      checkov:
        skip:
          - id: CKV_AWS_120
            comment: why the finding does not apply here

A skip on a SAM resource also covers the resources SAM generates from it, whose logical ids
start with its own (FlexApi -> FlexApiStage, SearchFunction -> SearchFunctionRole). Exit 1 on a
failed check, a skip without a reason, or a skip that matches no check (a misspelt id).

Runs under the SAM CLI's interpreter (``.venv-sam``, for samtranslator, the translator
``sam validate`` uses); checkov runs from its own virtualenv. Nothing here calls AWS.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CHECK_ID = re.compile(r"^CKV2?_[A-Z0-9]+_\d+$")
_SAM_TYPE_PREFIX = "AWS::Serverless::"
# `sam validate` uploads nothing either: a local CodeUri becomes an S3 URI of the same name.
_LOCAL_CODE_PROPERTIES = ("CodeUri", "ContentUri", "DefinitionUri")
SKIP_EXAMPLE = """\
    Metadata:
      checkov:
        skip:
          - id: {check_id}
            comment: <one line: why this finding does not apply here>"""


@dataclass(frozen=True)
class Result:
    """One checkov result for one resource of one of the two scanned documents."""

    check_id: str
    check_name: str
    resource_type: str
    logical_id: str
    deployed: bool  # found in the SAM translation, not in template.yaml as written
    reason: str = ""  # a skip's comment

    @property
    def key(self) -> tuple[str, str]:
        return self.check_id, self.logical_id


@dataclass(frozen=True)
class Counts:
    passed: int
    failed: int
    skipped: int

    def __str__(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"


# --------------------------------------------------------------------------- suppressions


def skips_of(resource: dict[str, Any]) -> list[Any]:
    """The entries of ``Metadata.checkov.skip`` (malformed ones too: they are reported)."""
    metadata = resource.get("Metadata")
    checkov = metadata.get("checkov") if isinstance(metadata, dict) else None
    if isinstance(checkov, dict) and isinstance(checkov.get("skip"), list):
        return list(checkov["skip"])
    return [] if checkov is None else [checkov]


def suppression_problems(template: dict[str, Any]) -> list[str]:
    """Every skip names one check id and gives a one-line reason."""
    problems = []
    for logical_id, resource in template.get("Resources", {}).items():
        for skip in skips_of(resource):
            where = f"{logical_id}: Metadata.checkov.skip"
            if not isinstance(skip, dict) or not {"id", "comment"} >= set(skip):
                problems.append(f"{where} must be a list of {{id, comment}}, got {skip!r}")
                continue
            check_id = str(skip.get("id", ""))
            comment = skip.get("comment")
            if not _CHECK_ID.match(check_id):
                problems.append(f"{where}: {check_id!r} is not a checkov check id (CKV_AWS_123)")
            if not isinstance(comment, str) or not comment.strip():
                problems.append(f"{where} {check_id}: no comment; say in one line why it is safe")
            elif "\n" in comment.strip():
                problems.append(f"{where} {check_id}: the comment must be one line")
    return problems


# --------------------------------------------------------------------------- SAM translation


def sam_owner(logical_id: str, template: dict[str, Any]) -> str | None:
    """The SAM resource a generated resource came from: the longest logical-id prefix."""
    owners = [
        name
        for name, resource in template.get("Resources", {}).items()
        if str(resource.get("Type", "")).startswith(_SAM_TYPE_PREFIX)
        and logical_id.startswith(name)
        and logical_id != name
    ]
    return max(owners, key=len) if owners else None


def carry_skips(template: dict[str, Any], translated: dict[str, Any]) -> dict[str, str]:
    """Give each generated resource its SAM resource's skips; returns generated -> SAM id."""
    owners: dict[str, str] = {}
    source = template.get("Resources", {})
    for logical_id, resource in translated.get("Resources", {}).items():
        owner = None if logical_id in source else sam_owner(logical_id, template)
        if owner is None:
            continue
        owners[logical_id] = owner
        skips = [s for s in skips_of(source[owner]) if isinstance(s, dict)]
        if skips:
            metadata = resource.setdefault("Metadata", {})
            metadata["checkov"] = {"skip": copy.deepcopy(skips)}
    return owners


def load_template(path: Path) -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse  # the SAM CLI's own YAML reader

    template: dict[str, Any] = yaml_parse(path.read_text())
    return template


def translate(template: dict[str, Any]) -> dict[str, Any]:
    """What CloudFormation would deploy, translated offline as `sam validate` does."""
    from samtranslator.translator.transform import transform

    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # any region: nothing is called
    document = copy.deepcopy(template)
    for resource in document.get("Resources", {}).values():
        properties = resource.get("Properties") or {}
        for key in _LOCAL_CODE_PROPERTIES:
            if isinstance(properties.get(key), str) and not properties[key].startswith("s3://"):
                properties[key] = f"s3://local-build/{properties[key]}"

    class OfflinePolicyLoader:
        """SAM resolves AWS-managed policy names from its bundled list; nothing else offline."""

        def load(self) -> dict[str, str]:
            raise RuntimeError("a managed policy SAM does not know by name: use its ARN")

    translated: dict[str, Any] = transform(document, {}, OfflinePolicyLoader())
    return translated


# --------------------------------------------------------------------------- checkov report


def run_checkov(checkov: Path, files: Iterable[Path]) -> dict[str, Any]:
    command = [str(checkov), "--framework", "cloudformation", "--output", "json"]
    command += ["--skip-download"]  # offline: no policy metadata from a SaaS
    for file in files:
        command += ["--file", str(file)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    try:
        report = json.loads(completed.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(
            f"checkov exited {completed.returncode} without a JSON report:\n{completed.stderr}"
        ) from None
    reports = report if isinstance(report, list) else [report]
    [cloudformation] = [r for r in reports if r.get("check_type") == "cloudformation"]
    result: dict[str, Any] = cloudformation
    return result


def _results(report: dict[str, Any], kind: str, deployed_file: Path) -> Iterator[Result]:
    for item in report["results"].get(kind, []):
        resource_type, _, logical_id = item["resource"].rpartition(".")
        yield Result(
            check_id=item["check_id"],
            check_name=item["check_name"],
            resource_type=resource_type,
            logical_id=logical_id,
            deployed=Path(item["file_abs_path"]).resolve() == deployed_file.resolve(),
            reason=str(item["check_result"].get("suppress_comment") or ""),
        )


def results(report: dict[str, Any], deployed_file: Path) -> dict[str, list[Result]]:
    kinds = {"passed": "passed_checks", "failed": "failed_checks", "skipped": "skipped_checks"}
    return {name: list(_results(report, kind, deployed_file)) for name, kind in kinds.items()}


def counts(found: dict[str, list[Result]], deployed: bool) -> Counts:
    def number(kind: str) -> int:
        return sum(1 for r in found[kind] if r.deployed is deployed)

    return Counts(number("passed"), number("failed"), number("skipped"))


def unexplained(found: dict[str, list[Result]], owners: dict[str, str]) -> list[Result]:
    """Failures, each once: a finding of the template as written is not repeated for its
    translation (the same resource, or one SAM generates from it, failing the same check)."""
    as_written = {r.key for r in found["failed"] if not r.deployed}
    return [
        r
        for r in found["failed"]
        if not r.deployed or (r.check_id, owners.get(r.logical_id, r.logical_id)) not in as_written
    ]


def unmatched_skips(
    template: dict[str, Any], found: dict[str, list[Result]], owners: dict[str, str]
) -> list[str]:
    """Skips that suppressed nothing, in the template or in what SAM generated from it."""
    applied = {(r.check_id, owners.get(r.logical_id, r.logical_id)) for r in found["skipped"]}
    return [
        f"{logical_id}: the skip of {skip['id']} matches no check of this resource"
        " (or of what SAM generates from it): remove it or correct the id"
        for logical_id, resource in template.get("Resources", {}).items()
        for skip in skips_of(resource)
        if isinstance(skip, dict) and (skip.get("id"), logical_id) not in applied
    ]


def resource_line(template_text: str, logical_id: str) -> int | None:
    match = re.search(rf"^  {re.escape(logical_id)}:\s*$", template_text, re.MULTILINE)
    return template_text.count("\n", 0, match.start()) + 1 if match else None


def render_failure(
    result: Result, owners: dict[str, str], template_name: str, template_text: str
) -> str:
    owner = owners.get(result.logical_id) if result.deployed else None
    line = resource_line(template_text, owner or result.logical_id)
    where = f"{template_name}:{line}" if line else template_name
    resource = f"{result.logical_id} ({result.resource_type})"
    if owner:
        resource += f", generated by SAM from {owner}"
    elif result.deployed:
        resource += ", in the SAM translation"
    return f"FAILED {result.check_id}  {result.check_name}\n  {resource}  {where}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", type=Path, default=Path("template.yaml"))
    parser.add_argument("--checkov", type=Path, default=Path(".venv-scan/bin/checkov"))
    parser.add_argument("--out-dir", type=Path, default=Path(".aws-sam/scan"))
    args = parser.parse_args(argv)

    template = load_template(args.template)
    problems = suppression_problems(template)
    translated = translate(template)
    owners = carry_skips(template, translated)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    deployed_file = args.out_dir / "template.translated.json"
    deployed_file.write_text(json.dumps(translated, indent=1))

    report = run_checkov(args.checkov, [args.template, deployed_file])
    found = results(report, deployed_file)
    problems += unmatched_skips(template, found, owners)
    failures = unexplained(found, owners)
    parsing_errors = report["results"].get("parsing_errors", [])
    problems += [f"checkov could not parse {path}" for path in parsing_errors]

    version = report["summary"].get("checkov_version", "?")
    print(f"checkov {version}, framework cloudformation")
    print(f"  {args.template} as written: {counts(found, deployed=False)}")
    print(f"  as deployed (SAM translation, {deployed_file}): {counts(found, deployed=True)}")
    template_text = args.template.read_text()
    for failure in failures:
        print(render_failure(failure, owners, str(args.template), template_text))
    for problem in problems:
        print(f"SUPPRESSION {problem}")
    if failures:
        print(
            "\nFix each finding, or suppress it beside the resource (for a generated resource,"
            " on the SAM resource it comes from) with a one-line reason:\n"
            + SKIP_EXAMPLE.format(check_id=failures[0].check_id)
        )
    if failures or problems:
        print(f"scan FAILED: {len(failures)} unexplained finding(s), {len(problems)} problem(s)")
        return 1
    print("scan OK: every finding is fixed or suppressed with a reason")
    return 0


if __name__ == "__main__":
    sys.exit(main())
