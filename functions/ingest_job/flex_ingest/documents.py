"""Text out of HTML, PDF and DOCX. Imported only when such a file arrives (cold start).

Every parser here reads untrusted bytes: any failure is a corrupt object (a ``RejectedObject``),
never an exception that would make Lambda retry the same bytes. And each is bounded by what it
actually reads, never by what the file claims: the text collected (a ``TextBudget``), the bytes
a zip member or PDF stream expands to, the pages of a PDF, the elements of an HTML page.
"""

from __future__ import annotations

import io
import re
import zipfile
from html.parser import HTMLParser
from typing import Any
from xml.parsers import expat

from flex_ingest.limits import TextBudget
from flex_ingest.rejections import RejectedObject, RejectReason

# Elements whose content a reader never sees.
_INVISIBLE = frozenset({"head", "script", "style", "template", "noscript", "svg", "math"})
# Elements that start a new line (so paragraphs survive for the chunker).
_PARAGRAPH = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "tr", "table", "ul", "ol", "section"}
    | {"article", "pre"}
)
_BLOCK = _PARAGRAPH | {
    "address",
    "aside",
    "blockquote",
    "br",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "header",
    "hr",
    "main",
    "nav",
    "summary",
    "td",
    "th",
}
_INLINE_SPACES = re.compile(r"[ \t\f\v\xa0]+")

HTML_MAX_ELEMENTS = 100_000
"""A job page holds a few thousand elements, a heavy one tens of thousands; html.parser spends
microseconds on each, so this bounds the time a page of nothing but tags can take."""

PDF_MAX_PAGES = 100
"""A job description is 1-10 pages. Text extraction costs milliseconds per page and pages can
share one content stream, so a PDF of thousands of pages is refused before any is read."""
PDF_MAX_STREAM_BYTES = 16 * 1024 * 1024
"""What one PDF stream (a page's content, a font) may expand to; pypdf's own default is 75 MB."""

DOCX_MAX_XML_BYTES = 16 * 1024 * 1024
"""What ``word/document.xml`` may expand to, counted as it is inflated: a long job description
is well under 1 MB of it. Parsed in one piece, because expat (before 2.6) rescans a token cut
across pieces from its start every time, which makes a huge attribute quadratic."""
_ZIP_READ_BYTES = 64 * 1024
_DOCX_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
"""What Word writes. zipfile inflates bzip2 and LZMA members without bounding the output of
one read, and cannot read Deflate64: such a member is refused before it is touched."""
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


class _VisibleText(HTMLParser):
    def __init__(self, budget: TextBudget) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self._budget = budget
        self._elements = 0
        self._newlines = 0  # line breaks due before the next text
        self._hidden_depth = 0
        self._in_title = False

    def _line_break(self, newlines: int) -> None:
        # Three or more make one blank line in the end, so nested blocks cost nothing.
        self._newlines = min(self._newlines + newlines, 3)

    def _count_element(self) -> None:
        self._elements += 1
        if self._elements > HTML_MAX_ELEMENTS:
            raise RejectedObject(
                RejectReason.TOO_LARGE, f"the HTML has more than {HTML_MAX_ELEMENTS} elements"
            )

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._count_element()
        if tag == "title":
            self._in_title = True
        if tag in _INVISIBLE:
            self._hidden_depth += 1
        elif tag in _BLOCK:
            self._line_break(2 if tag in _PARAGRAPH else 1)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._count_element()
        if tag in _BLOCK:
            self._line_break(1)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _INVISIBLE:
            self._hidden_depth = max(0, self._hidden_depth - 1)
        elif tag in _BLOCK:
            self._line_break(2 if tag in _PARAGRAPH else 1)

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._budget.take(len(data))
            self.title_parts.append(data)
        elif self._hidden_depth == 0:
            text = _INLINE_SPACES.sub(" ", data.replace("\n", " "))
            if self._newlines:
                if not text.strip():
                    return  # spaces beside a line break are stripped in the end anyway
                self.parts.append("\n" * self._newlines)
                self._newlines = 0
            self._budget.take(len(text))
            self.parts.append(text)

    def close(self) -> None:
        # What feed() leaves unparsed at the end is text awaiting a character reference, or
        # markup never closed: a tag, comment or declaration that runs to the end of the file,
        # which HTML5 drops. Python's close() (before 3.11.13) rescans such a tail once per
        # character, so a file of "<a<a<a..." would take hours: drop it first.
        if self.rawdata.startswith("<"):
            self.rawdata = ""
        super().close()


def html_text(html: str, budget: TextBudget) -> tuple[str, str | None]:
    """Visible text (no head/script/style) with block elements as line breaks, and the
    document's ``<title>`` if it has one."""
    parser = _VisibleText(budget)
    try:
        parser.feed(html)
        parser.close()
    except RejectedObject:
        raise
    except Exception as exc:  # html.parser is lenient; anything raised means garbage
        raise RejectedObject(RejectReason.CORRUPT, f"HTML could not be parsed ({exc})") from None
    lines = [line.strip() for line in "".join(parser.parts).split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    title = " ".join("".join(parser.title_parts).split()) or None
    return text, title


def pdf_text(body: bytes, budget: TextBudget) -> str:
    """Text of every page, pages separated by blank lines."""
    from pypdf import PdfReader, apply_configuration  # heavy; only PDFs need it
    from pypdf.errors import LimitReachedError

    pages: list[str] = []
    try:
        with apply_configuration(
            zlib_maximum_output_length=PDF_MAX_STREAM_BYTES,
            lzw_maximum_output_length=PDF_MAX_STREAM_BYTES,
            run_length_maximum_output_length=PDF_MAX_STREAM_BYTES,
            brotli_maximum_output_length=PDF_MAX_STREAM_BYTES,
            array_based_stream_maximum_output_length=PDF_MAX_STREAM_BYTES,
        ):
            reader = PdfReader(io.BytesIO(body))
            if reader.is_encrypted and not reader.decrypt(""):
                raise RejectedObject(RejectReason.CORRUPT, "the PDF is password-protected")
            # The page tree's own count first: refusing an honest one costs nothing.
            count = _declared_page_count(reader)
            if count <= PDF_MAX_PAGES:
                count = len(reader.pages)
            if count > PDF_MAX_PAGES:
                raise RejectedObject(
                    RejectReason.TOO_LONG,
                    f"the PDF has {count} pages; at most {PDF_MAX_PAGES} are read",
                )
            for page in reader.pages:
                text = (page.extract_text() or "").strip()
                budget.take(len(text))
                if text:
                    pages.append(text)
    except RejectedObject:
        raise
    except LimitReachedError as exc:
        raise RejectedObject(
            RejectReason.TOO_LARGE, f"the PDF exceeds a reading limit ({exc})"
        ) from None
    except Exception as exc:  # pypdf raises many types on malformed input
        raise RejectedObject(RejectReason.CORRUPT, f"PDF could not be read ({exc})") from None
    return "\n\n".join(pages)


def _declared_page_count(reader: Any) -> int:
    try:
        return int(reader.root_object["/Pages"]["/Count"])
    except Exception:  # missing or malformed: the page tree itself will tell
        return 0


class _UnsafeXml(Exception):
    pass


class _DocxText:
    """Paragraph text of word/document.xml, through expat with DTDs refused."""

    def __init__(self, budget: TextBudget) -> None:
        self.paragraphs: list[str] = []
        self._budget = budget
        self._current: list[str] | None = None
        self._in_text = False

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if name == f"{_W} p":
            self._flush()
            self._current = []
        elif name == f"{_W} t":
            self._in_text = True
        elif self._current is not None and name == f"{_W} tab":
            self._add("\t")
        elif self._current is not None and name in (f"{_W} br", f"{_W} cr"):
            self._add("\n")

    def end(self, name: str) -> None:
        if name == f"{_W} p":
            self._flush()
        elif name == f"{_W} t":
            self._in_text = False

    def data(self, text: str) -> None:
        if self._in_text:
            self._add(text)

    def _add(self, text: str) -> None:
        self._budget.take(len(text))
        if self._current is None:
            self._current = []
        self._current.append(text)

    def _flush(self) -> None:
        if self._current:
            self.paragraphs.append("".join(self._current))
        self._current = None


def _refuse(*_: Any) -> None:
    # No Word document carries a DTD; refusing one rules out entity expansion attacks.
    raise _UnsafeXml("DTDs and entity declarations are not allowed")


def _zip_member(archive: zipfile.ZipFile, name: str, max_bytes: int) -> bytearray:
    """The member's bytes, inflated ``_ZIP_READ_BYTES`` at a time and counted as they come;
    its headers are not trusted for anything (with a size that lies low, ``ZipFile.read``
    inflates the whole member in one call). Raises ``KeyError`` when there is no such member."""
    info = archive.getinfo(name)
    if info.flag_bits & 0x1:
        raise RejectedObject(RejectReason.CORRUPT, f"{name} is encrypted")
    if info.compress_type not in _DOCX_METHODS:
        raise RejectedObject(
            RejectReason.CORRUPT,
            f"{name} uses zip compression method {info.compress_type}; Word writes only"
            " stored (0) and deflated (8) parts",
        )
    data = bytearray()
    with archive.open(info) as member:
        while chunk := member.read(_ZIP_READ_BYTES):
            data += chunk
            if len(data) > max_bytes:
                raise RejectedObject(
                    RejectReason.TOO_LARGE, f"{name} expands past {max_bytes} bytes"
                )
    return data


def docx_text(body: bytes, budget: TextBudget) -> str:
    """Paragraphs of the main document part (tables' cells included), blank-line separated."""
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            xml = _zip_member(archive, "word/document.xml", DOCX_MAX_XML_BYTES)
    except RejectedObject:
        raise
    except KeyError:
        raise RejectedObject(RejectReason.CORRUPT, "DOCX has no word/document.xml") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise RejectedObject(RejectReason.CORRUPT, f"DOCX is not a valid zip ({exc})") from None

    collector = _DocxText(budget)
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.StartElementHandler = collector.start
    parser.EndElementHandler = collector.end
    parser.CharacterDataHandler = collector.data
    parser.buffer_text = True
    try:
        parser.Parse(xml, True)
    except (expat.ExpatError, _UnsafeXml) as exc:
        raise RejectedObject(RejectReason.CORRUPT, f"DOCX XML is invalid ({exc})") from None
    collector.end(f"{_W} p")
    return "\n\n".join(paragraph for paragraph in collector.paragraphs if paragraph.strip())
