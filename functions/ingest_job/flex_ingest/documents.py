"""Text out of HTML, PDF and DOCX. Imported only when such a file arrives (cold start).

Every parser here reads untrusted bytes: any failure is a corrupt object (a ``RejectedObject``),
never an exception that would make Lambda retry the same bytes.
"""

from __future__ import annotations

import io
import re
import zipfile
from html.parser import HTMLParser
from typing import Any
from xml.parsers import expat

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

# A DOCX is a zip: bound what one member may expand to (zip bombs).
_DOCX_MAX_XML_BYTES = 64 * 1024 * 1024
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self._hidden_depth = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in _INVISIBLE:
            self._hidden_depth += 1
        elif tag in _BLOCK:
            self.parts.append("\n\n" if tag in _PARAGRAPH else "\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _INVISIBLE:
            self._hidden_depth = max(0, self._hidden_depth - 1)
        elif tag in _BLOCK:
            self.parts.append("\n\n" if tag in _PARAGRAPH else "\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title_parts.append(data)
        elif self._hidden_depth == 0:
            self.parts.append(_INLINE_SPACES.sub(" ", data.replace("\n", " ")))


def html_text(html: str) -> tuple[str, str | None]:
    """Visible text (no head/script/style) with block elements as line breaks, and the
    document's ``<title>`` if it has one."""
    parser = _VisibleText()
    try:
        parser.feed(html)
        parser.close()
    except Exception as exc:  # html.parser is lenient; anything raised means garbage
        raise RejectedObject(RejectReason.CORRUPT, f"HTML could not be parsed ({exc})") from None
    lines = [line.strip() for line in "".join(parser.parts).split("\n")]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    title = " ".join("".join(parser.title_parts).split()) or None
    return text, title


def pdf_text(body: bytes) -> str:
    """Text of every page, pages separated by blank lines."""
    from pypdf import PdfReader  # heavy; only PDFs need it

    try:
        reader = PdfReader(io.BytesIO(body))
        if reader.is_encrypted and not reader.decrypt(""):
            raise RejectedObject(RejectReason.CORRUPT, "the PDF is password-protected")
        pages = [page.extract_text() or "" for page in reader.pages]
    except RejectedObject:
        raise
    except Exception as exc:  # pypdf raises many types on malformed input
        raise RejectedObject(RejectReason.CORRUPT, f"PDF could not be read ({exc})") from None
    return "\n\n".join(page.strip() for page in pages if page.strip())


class _UnsafeXml(Exception):
    pass


class _DocxText:
    """Paragraph text of word/document.xml, streamed through expat with DTDs refused."""

    def __init__(self) -> None:
        self.paragraphs: list[str] = []
        self._current: list[str] | None = None
        self._in_text = False

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if name == f"{_W} p":
            self._flush()
            self._current = []
        elif name == f"{_W} t":
            self._in_text = True
        elif self._current is not None and name == f"{_W} tab":
            self._current.append("\t")
        elif self._current is not None and name in (f"{_W} br", f"{_W} cr"):
            self._current.append("\n")

    def end(self, name: str) -> None:
        if name == f"{_W} p":
            self._flush()
        elif name == f"{_W} t":
            self._in_text = False

    def data(self, text: str) -> None:
        if self._in_text:
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


def docx_text(body: bytes) -> str:
    """Paragraphs of the main document part (tables' cells included), blank-line separated."""
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            info = archive.getinfo("word/document.xml")
            if info.file_size > _DOCX_MAX_XML_BYTES:
                raise RejectedObject(
                    RejectReason.TOO_LARGE,
                    f"word/document.xml expands to {info.file_size} bytes",
                )
            xml = archive.read(info)
    except RejectedObject:
        raise
    except KeyError:
        raise RejectedObject(RejectReason.CORRUPT, "DOCX has no word/document.xml") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise RejectedObject(RejectReason.CORRUPT, f"DOCX is not a valid zip ({exc})") from None

    collector = _DocxText()
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
