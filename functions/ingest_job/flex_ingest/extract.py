"""Object bytes + S3 metadata -> the job to store, or a ``RejectedObject`` naming why not.

Everything here is pure (no AWS, no database) so each format and each rejection is easy to
test. PDF, DOCX and HTML parsing live in ``flex_ingest.documents`` and are imported only when
such a file arrives.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from typing import Any

from flex_ingest.limits import DEFAULT_MAX_TEXT_CHARS, TextBudget, text_too_long
from flex_ingest.rejections import RejectedObject, RejectReason
from flex_shared.postgres import INT4_MAX

TITLE_MAX_CHARS = 500  # jobs.title is VARCHAR(500)
_KEY_COMPANY = re.compile(r"^jobs/(\d+)/.+")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")  # tab, newlines, VT, FF are text
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+")
_SPACES = re.compile(r"\s+")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_HANGUL_SYLLABLES = re.compile(r"[\uac00-\ud7a3]+")

# A job's JSON is a flat object with a few fields. These bound what parsing a hostile one may
# cost: a Python object for every value (2 million strings fit in 10 MiB), for every '{' and '['
# (3.5 million empty objects do), and recursion (json, and our own walks, recurse per level).
JSON_MAX_CONTAINERS = 10_000
JSON_MAX_DEPTH = 20
JSON_MAX_METADATA_BYTES = 64 * 1024  # the other fields, kept in source_metadata.document
JSON_CHARS_PER_TEXT_CHAR = 6  # the longest escape of one character of text: \uXXXX

TEXT_SUFFIXES = (".txt", ".md")
HTML_SUFFIXES = (".html", ".htm")
SUPPORTED_SUFFIXES = (".json", *TEXT_SUFFIXES, *HTML_SUFFIXES, ".pdf", ".docx")


@dataclass(frozen=True)
class ExtractedJob:
    company_id: int
    title: str
    description: str
    source_metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def content_sha256(self) -> str:
        """Hash of what is embedded: equal hashes mean the stored chunks can be kept."""
        return hashlib.sha256(self.description.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Document:
    text: str
    title_hint: str | None = None  # e.g. HTML <title>


def suffix_of(key: str) -> str:
    name = key.rsplit("/", 1)[-1].lower()
    return name[name.rfind(".") :] if "." in name else ""


def extract_job(
    key: str,
    body: bytes,
    user_metadata: Mapping[str, str],
    *,
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
) -> ExtractedJob:
    """Turn one S3 object into a job; raise ``RejectedObject`` when it cannot be one.

    A description longer than ``max_text_chars`` is rejected ``too_long``; PDF, DOCX and HTML
    extraction stops as soon as it collects more."""
    suffix = suffix_of(key)
    if suffix not in SUPPORTED_SUFFIXES:
        raise RejectedObject(
            RejectReason.UNSUPPORTED_TYPE,
            f"file type {suffix or '(none)'!r} is not one of {', '.join(SUPPORTED_SUFFIXES)}",
        )
    if not body.strip():
        raise RejectedObject(RejectReason.EMPTY, "the object is empty")
    metadata = _decoded_metadata(user_metadata)
    if suffix == ".json":
        return _job_from_json(key, decode_text(body), metadata, max_text_chars)

    if suffix in TEXT_SUFFIXES:
        document = _Document(decode_text(body))
    else:
        from flex_ingest import documents  # PDF/DOCX/HTML parsers: only for those files

        budget = TextBudget(max_text_chars)
        if suffix in HTML_SUFFIXES:
            text, html_title = documents.html_text(decode_text(body), budget)
            document = _Document(text, html_title)
        elif suffix == ".pdf":
            document = _Document(documents.pdf_text(body, budget))
        else:
            document = _Document(documents.docx_text(body, budget))

    description = _checked_length(normalize_text(document.text), max_text_chars)
    if not description:
        raise RejectedObject(RejectReason.EMPTY, "no text in the document")
    title = metadata.get("title") or document.title_hint or _first_line_title(description)
    return ExtractedJob(
        company_id=_company_id(key, None, metadata),
        title=_checked_title(title, derived=not metadata.get("title")),
        description=description,
        source_metadata=_kept_metadata(metadata),
    )


def decode_text(body: bytes) -> str:
    """BOM -> strict UTF-8 -> CP949 (a superset of EUC-KR); never guess into mojibake."""
    if body.startswith(codecs.BOM_UTF8):
        candidates: tuple[str, ...] = ("utf-8-sig",)
    elif body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ("utf-16",)
    else:
        candidates = ("utf-8", "cp949")
    for encoding in candidates:
        try:
            text = body.decode(encoding)
        except UnicodeDecodeError:
            continue
        if encoding == "cp949" and not _plausible_korean(text):
            continue
        if _CONTROL.search(text):
            continue  # binary data or a BOM-less UTF-16 file, not text
        return text
    raise RejectedObject(
        RejectReason.UNDECODABLE, "text is not UTF-8, UTF-16 with a BOM, or CP949/EUC-KR"
    )


def _plausible_korean(text: str) -> bool:
    """CP949 decodes many byte soups; real Korean text is mostly Hangul syllables. Counted by
    what removing them leaves (one copy of the text, not one object per character)."""
    non_ascii = len(text) - len(_NON_ASCII.sub("", text))
    if not non_ascii:
        return True
    hangul = len(text) - len(_HANGUL_SYLLABLES.sub("", text))
    return hangul / non_ascii >= 0.6


def _checked_length(description: str, max_chars: int) -> str:
    if len(description) > max_chars:
        raise text_too_long(max_chars, len(description))
    return description


def normalize_text(text: str) -> str:
    """NFC (macOS writes decomposed Hangul), one newline style, no NULs, trimmed."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\x00", "").strip()


def _first_line_title(description: str) -> str | None:
    for line in description.split("\n"):
        title = _HEADING.sub("", line).strip().strip("#").strip()
        if title:
            return title
    return None


def _checked_title(title: object, *, derived: bool) -> str:
    if title is None or (isinstance(title, str) and not title.strip()):
        raise RejectedObject(RejectReason.MISSING_TITLE, "no title given")
    if not isinstance(title, str):
        raise RejectedObject(RejectReason.INVALID_TITLE, "title must be a string")
    title = _SPACES.sub(" ", _CONTROL.sub("", title)).strip()
    if not title:
        raise RejectedObject(RejectReason.MISSING_TITLE, "no title given")
    if len(title) > TITLE_MAX_CHARS:
        if not derived:
            raise RejectedObject(
                RejectReason.INVALID_TITLE,
                f"title is {len(title)} characters, at most {TITLE_MAX_CHARS} allowed",
            )
        title = title[: TITLE_MAX_CHARS - 1].rstrip() + "…"  # a guessed title may be cut
    return title


def _decoded_metadata(user_metadata: Mapping[str, str]) -> dict[str, str]:
    """S3 returns non-ASCII metadata values RFC 2047-encoded (``=?UTF-8?B?...?=``)."""
    decoded: dict[str, str] = {}
    for name, value in user_metadata.items():
        text = value
        if "=?" in value:
            try:
                text = str(make_header(decode_header(value)))
            except (ValueError, LookupError, UnicodeDecodeError):
                text = value
        # RFC 2047 can spell NUL (=00), which PostgreSQL text and JSONB cannot hold.
        decoded[name.lower().replace("_", "-")] = text.replace("\x00", "").strip()
    return decoded


def _kept_metadata(metadata: Mapping[str, str]) -> dict[str, Any]:
    return {name: value for name, value in metadata.items() if name not in ("title",)}


def _parse_company_id(value: object, source: str) -> int:
    if isinstance(value, bool):
        raise RejectedObject(RejectReason.INVALID_COMPANY_ID, f"{source} is not an integer")
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value) and source != "JSON":
        value = int(value)
    if not isinstance(value, int):
        raise RejectedObject(
            RejectReason.INVALID_COMPANY_ID, f"{source} {value!r} is not an integer"
        )
    if not 1 <= value <= INT4_MAX:
        raise RejectedObject(
            RejectReason.INVALID_COMPANY_ID, f"{source} {value} is outside 1..{INT4_MAX}"
        )
    return value


def _company_id(key: str, from_body: object, metadata: Mapping[str, str]) -> int:
    """JSON body, else S3 metadata ``company-id``, else the key ``jobs/<company_id>/<file>``.
    A value that is present but wrong is rejected, never silently replaced by the next one."""
    if from_body is not None:
        return _parse_company_id(from_body, "JSON")
    if "company-id" in metadata:
        return _parse_company_id(metadata["company-id"], "metadata company-id")
    match = _KEY_COMPANY.match(key)
    if match:
        return _parse_company_id(match.group(1), "key company id")
    raise RejectedObject(
        RejectReason.MISSING_COMPANY_ID,
        "no company_id in the body, no company-id metadata, and the key is not"
        " jobs/<company_id>/<file>",
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _without_nul(value: Any) -> Any:
    """PostgreSQL text and JSONB cannot hold U+0000."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {_without_nul(name): _without_nul(item) for name, item in value.items()}
    return value


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion (a hostile document may be deep)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            pending.extend(
                (child, depth + 1) for child in children if isinstance(child, dict | list)
            )
    return deepest


def _parsed_json(text: str, max_text_chars: int) -> Any:
    # Measured before parsing, because parsing is what a hostile document makes expensive: the
    # longest description allowed, every character escaped, plus the other fields; then the
    # '{' and '[' (strings included: a real job has a handful).
    max_chars = max_text_chars * JSON_CHARS_PER_TEXT_CHAR + JSON_MAX_METADATA_BYTES
    if len(text) > max_chars:
        raise RejectedObject(
            RejectReason.TOO_LARGE,
            f"the JSON has {len(text)} characters; at most {max_chars} are parsed",
        )
    containers = text.count("{") + text.count("[")
    if containers > JSON_MAX_CONTAINERS:
        raise RejectedObject(
            RejectReason.TOO_LARGE,
            f"the JSON has {containers} '{{' and '[' characters; at most"
            f" {JSON_MAX_CONTAINERS} are parsed",
        )
    too_deep = RejectedObject(
        RejectReason.INVALID_JSON, f"the JSON nests deeper than {JSON_MAX_DEPTH} levels"
    )
    try:
        body = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:  # deeper than the interpreter's recursion limit
        raise too_deep from None
    except ValueError as exc:
        raise RejectedObject(RejectReason.INVALID_JSON, f"not valid JSON ({exc})") from None
    if _depth(body) > JSON_MAX_DEPTH:
        raise too_deep
    return body


def _job_from_json(
    key: str, text: str, metadata: Mapping[str, str], max_text_chars: int
) -> ExtractedJob:
    body = _parsed_json(text, max_text_chars)
    if not isinstance(body, dict):
        raise RejectedObject(RejectReason.INVALID_JSON, "the JSON document is not an object")
    try:  # JSON escapes can spell lone surrogates ("\ud800"), which no database text holds
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise RejectedObject(
            RejectReason.INVALID_JSON, "the JSON holds an unpaired surrogate escape"
        ) from None
    description = body.get("description")
    if not isinstance(description, str):
        reason = "is missing" if description is None else "must be a string"
        raise RejectedObject(RejectReason.INVALID_JSON, f"description {reason}")
    description = _checked_length(normalize_text(description), max_text_chars)
    if not description:
        raise RejectedObject(RejectReason.EMPTY, "description is empty")
    title = body.get("title")
    if title is None:
        title = metadata.get("title") or None
    extra = {
        name: value
        for name, value in body.items()
        if name not in ("company_id", "title", "description")
    }
    source_metadata = _kept_metadata(metadata)
    if extra:
        size = len(json.dumps(extra, ensure_ascii=False).encode("utf-8"))
        if size > JSON_MAX_METADATA_BYTES:
            raise RejectedObject(
                RejectReason.TOO_LARGE,
                f"the JSON's other fields take {size} bytes; at most"
                f" {JSON_MAX_METADATA_BYTES} are kept as metadata",
            )
        source_metadata["document"] = _without_nul(extra)
    return ExtractedJob(
        company_id=_company_id(key, body.get("company_id"), metadata),
        title=_checked_title(title, derived=False),
        description=description,
        source_metadata=source_metadata,
    )
