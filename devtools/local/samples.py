"""Sample job descriptions (``devtools/samples``) as S3 uploads under ``jobs/<company_id>/``.

A directory named by a number is the company (``samples/202/x.html`` ->
``jobs/202/x.html``); a JSON sample names its own ``company_id``; anything else belongs to
company 1. README files and hidden files are not samples.
"""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_COMPANY_ID = 1
_SUPPORTED = {".json", ".txt", ".md", ".html", ".htm", ".pdf", ".docx"}


@dataclass(frozen=True)
class SampleUpload:
    path: Path
    key: str
    company_id: int
    content_type: str


def _company_of(relative: Path, path: Path) -> tuple[int, Path]:
    for index, part in enumerate(relative.parts[:-1]):
        if part.isdigit():
            return int(part), Path(*relative.parts[index + 1 :])
    if path.suffix.lower() == ".json":
        try:
            company = json.loads(path.read_text(encoding="utf-8-sig")).get("company_id")
        except (ValueError, AttributeError, UnicodeDecodeError):
            company = None
        if isinstance(company, int):
            return company, relative
    return DEFAULT_COMPANY_ID, relative


def find_samples(samples_dir: Path) -> list[SampleUpload]:
    uploads = []
    for path in sorted(samples_dir.rglob("*")):
        relative = path.relative_to(samples_dir)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        if path.name.upper().startswith("README") or path.suffix.lower() not in _SUPPORTED:
            continue
        company_id, rest = _company_of(relative, path)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if path.suffix.lower() == ".md":
            content_type = "text/markdown"
        uploads.append(
            SampleUpload(path, f"jobs/{company_id}/{rest.as_posix()}", company_id, content_type)
        )
    return uploads


def upload_samples(client: Any, bucket: str, samples: list[SampleUpload]) -> None:
    for sample in samples:
        client.put_object(
            Bucket=bucket,
            Key=sample.key,
            Body=sample.path.read_bytes(),
            ContentType=sample.content_type,
        )
