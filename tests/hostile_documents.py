"""Hostile uploads, built in memory by the tests themselves (no binary fixtures).

Each builder returns the bytes an attacker would upload to S3. The bombs are built directly as
compressed streams (one compressed MiB of a single byte, repeated), so a 600 MiB bomb costs a
few milliseconds and well under a megabyte to build, never the 600 MiB it expands to.
"""

from __future__ import annotations

import bz2
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MIB = 1024 * 1024
W_NAMESPACE = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
DOCX_PREFIX = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    f'<w:document xmlns:w="{W_NAMESPACE}"><w:body>'
    "<w:p><w:r><w:t>Backend Engineer</w:t></w:r></w:p><w:p><w:r><w:t>"
).encode()
DOCX_SUFFIX = b"</w:t></w:r></w:p></w:body></w:document>"
_ADLER_MOD = 65521
_BZ2_END_MAGIC = 0x177245385090
ZIP_STORED, ZIP_DEFLATED, ZIP_DEFLATE64, ZIP_BZIP2, ZIP_LZMA = 0, 8, 9, 12, 14


# --- compressed streams ------------------------------------------------------------------------


def deflate_run(prefix: bytes, byte: bytes, count: int, suffix: bytes) -> bytes:
    """Raw DEFLATE of ``prefix + byte * count + suffix`` without ever holding the expansion.

    Every piece ends with a full flush (byte-aligned, history reset), so one compressed MiB of
    ``byte`` is the same bytes every time and can simply be repeated.
    """
    whole, rest = divmod(count, MIB)

    def piece(data: bytes) -> bytes:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)

    final = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = final.compress(byte * rest + suffix) + final.flush(zlib.Z_FINISH)
    return piece(prefix) + piece(byte * MIB) * whole + tail


def adler32_run(prefix: bytes, byte: bytes, count: int, suffix: bytes) -> int:
    """Adler-32 of ``prefix + byte * count + suffix``; the run in closed form (no 600 MiB pass)."""
    checksum = zlib.adler32(prefix)
    low, high = checksum & 0xFFFF, checksum >> 16
    value = byte[0]
    high = (high + count * low + value * count * (count + 1) // 2) % _ADLER_MOD
    low = (low + count * value) % _ADLER_MOD
    return zlib.adler32(suffix, (high << 16) | low)


def zlib_run(prefix: bytes, byte: bytes, count: int, suffix: bytes) -> bytes:
    """A zlib stream (PDF ``/FlateDecode``) of ``prefix + byte * count + suffix``."""
    checksum = adler32_run(prefix, byte, count, suffix)
    return b"\x78\xda" + deflate_run(prefix, byte, count, suffix) + struct.pack(">I", checksum)


# --- zip (DOCX) ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZipMember:
    name: str
    data: bytes  # as stored in the archive (compressed by ``method``)
    declared_size: int  # what both headers claim the member expands to
    crc: int
    method: int = ZIP_DEFLATED
    flags: int = 0  # bit 0: encrypted


def deflated(name: str, content: bytes) -> ZipMember:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = compressor.compress(content) + compressor.flush()
    return ZipMember(name, data, len(content), zlib.crc32(content))


def _central_entry(member: ZipMember, name: bytes, offset: int) -> bytes:
    sizes = (member.crc, len(member.data), member.declared_size)
    header = (46, 46, member.flags, member.method, 0, 0x21)
    fields = (*header, *sizes, len(name), 0, 0, 0, 0, 0, offset)
    return struct.pack("<4s6H3L5H2L", b"PK\x01\x02", *fields) + name


def zip_archive(members: Sequence[ZipMember], directory_only: Sequence[bytes] = ()) -> bytes:
    """A zip written field by field, so headers can say anything (zipfile would tell the truth).

    ``directory_only``: names of empty members listed in the central directory alone (readers
    load the whole directory when they open an archive; a member's own header is read only
    when that member is).
    """
    local_parts: list[bytes] = []
    central_parts: list[bytes] = []
    offset = 0
    for member in members:
        name = member.name.encode()
        sizes = (member.crc, len(member.data), member.declared_size)
        header = (46, member.flags, member.method, 0, 0x21)
        local = struct.pack("<4s5H3L2H", b"PK\x03\x04", *header, *sizes, len(name), 0)
        central_parts.append(_central_entry(member, name, offset))
        local_parts.append(local + name + member.data)
        offset += len(local) + len(name) + len(member.data)
    empty = ZipMember("", b"", 0, 0, method=ZIP_STORED)
    headers: dict[int, bytes] = {}  # an empty member's entry depends on its name's length only
    for name in directory_only:
        if len(name) not in headers:
            headers[len(name)] = _central_entry(empty, name, 0)[: -len(name)]
        central_parts.append(headers[len(name)] + name)
    central = b"".join(central_parts)
    count = len(central_parts)
    zip64 = b""
    if count > 0xFFFF:  # ZIP64 end records carry the real count; the classic one says 0xFFFF
        record = offset + len(central)
        zip64 = struct.pack(
            "<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(central), offset
        ) + struct.pack("<4sLQL", b"PK\x06\x07", 0, record, 1)
        count = 0xFFFF
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(central), offset, 0)
    return b"".join(local_parts) + central + zip64 + end


def docx_bomb(expanded_bytes: int, declared_size: int | None = None) -> bytes:
    """A DOCX whose ``word/document.xml`` is one paragraph of ``expanded_bytes`` letters.

    ``declared_size`` is what both zip headers claim (default: the truth). Its CRC is that of
    the first ``declared_size`` bytes, so a reader that trusts the headers finds them consistent.
    """
    content_bytes = len(DOCX_PREFIX) + expanded_bytes + len(DOCX_SUFFIX)
    declared = content_bytes if declared_size is None else declared_size
    # A lying header gets the CRC of the bytes it claims; an honest bomb's CRC is never reached
    # (reading stops at the limit), and computing it would mean a 600 MiB pass.
    crc = zlib.crc32((DOCX_PREFIX + b"a" * declared)[:declared]) if declared < content_bytes else 0
    document = ZipMember(
        "word/document.xml",
        deflate_run(DOCX_PREFIX, b"a", expanded_bytes, DOCX_SUFFIX),
        declared,
        crc,
    )
    return zip_archive([deflated("[Content_Types].xml", b"<Types/>"), document])


def docx_huge_attribute(value_bytes: int) -> bytes:
    """A DOCX whose second paragraph carries a ``value_bytes``-long attribute: no more text, but
    an XML parser must hold the whole start tag at once. Honest headers, true CRC."""
    prefix = (
        f'<w:document xmlns:w="{W_NAMESPACE}"><w:body><w:p><w:r><w:t>Backend Engineer'
        '</w:t></w:r></w:p><w:p w:rsidR="'
    ).encode()
    suffix = b'"/></w:body></w:document>'
    size = len(prefix) + value_bytes + len(suffix)
    crc = zlib.crc32(prefix)
    whole, rest = divmod(value_bytes, MIB)
    block = b"a" * MIB
    for _ in range(whole):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(suffix, zlib.crc32(b"a" * rest, crc))
    document = ZipMember(
        "word/document.xml", deflate_run(prefix, b"a", value_bytes, suffix), size, crc
    )
    return zip_archive([deflated("[Content_Types].xml", b"<Types/>"), document])


def docx_with_document(document_xml: str) -> bytes:
    return zip_archive(
        [
            deflated("[Content_Types].xml", b"<Types/>"),
            deflated("word/document.xml", document_xml.encode()),
        ]
    )


def billion_laughs_docx() -> bytes:
    """Ten levels of ten entity references: 10^9 "lol"s if a parser expanded them."""
    entities = ['<!ENTITY lol0 "lol">']
    for level in range(1, 10):
        entities.append(f'<!ENTITY lol{level} "{f"&lol{level - 1};" * 10}">')
    return docx_with_document(
        f'<?xml version="1.0"?><!DOCTYPE lolz [{"".join(entities)}]>'
        f'<w:document xmlns:w="{W_NAMESPACE}"><w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p>'
        "</w:body></w:document>"
    )


def docx_many_members(count: int) -> bytes:
    """A valid DOCX whose central directory also lists ``count`` empty members."""
    document = (
        f'<w:document xmlns:w="{W_NAMESPACE}"><w:body><w:p><w:r><w:t>Backend Engineer'
        "</w:t></w:r></w:p></w:body></w:document>"
    )
    names = [b"%05x" % index for index in range(count)]
    return zip_archive([deflated("word/document.xml", document.encode())], names)


def bzip2_run(byte: bytes, mebibytes: int) -> bytes:
    """A bzip2 stream of ``byte * mebibytes MiB``: one compressed MiB, its block repeated.

    bzip2 blocks are bit-aligned, so the block is repeated as a bit string; the stream's CRC
    combines the (equal) block CRCs as the format says.
    """
    single = bz2.compress(byte * MIB, 9)
    bits = int.from_bytes(single[4:], "big")  # after "BZh9"
    total = 8 * (len(single) - 4)
    padding = next(p for p in range(8) if (bits >> (p + 32)) & (2**48 - 1) == _BZ2_END_MAGIC)
    block_bits = total - padding - 80
    block = bits >> (padding + 80)
    block_crc = (block >> (block_bits - 80)) & 0xFFFFFFFF
    combined = 0
    for _ in range(mebibytes):
        combined = (((combined << 1) | (combined >> 31)) & 0xFFFFFFFF) ^ block_crc
    stream = format(block, f"0{block_bits}b") * mebibytes
    stream += format(_BZ2_END_MAGIC, "048b") + format(combined, "032b")
    stream += "0" * (-len(stream) % 8)
    return b"BZh9" + int(stream, 2).to_bytes(len(stream) // 8, "big")


def docx_bzip2_bomb(mebibytes: int, declared_size: int = 1024) -> bytes:
    """``word/document.xml`` compressed with bzip2 (zip method 12, which Python's zipfile
    inflates without any output bound): ``mebibytes`` MiB from a few kilobytes."""
    document = ZipMember(
        "word/document.xml", bzip2_run(b"a", mebibytes), declared_size, 0, method=ZIP_BZIP2
    )
    return zip_archive([deflated("[Content_Types].xml", b"<Types/>"), document])


def docx_member_variant(*, method: int = ZIP_DEFLATED, flags: int = 0) -> bytes:
    """A small DOCX whose main part is stored with another compression method or flags."""
    xml = (
        f'<w:document xmlns:w="{W_NAMESPACE}"><w:body><w:p><w:r><w:t>Backend Engineer'
        "</w:t></w:r></w:p></w:body></w:document>"
    ).encode()
    plain = deflated("word/document.xml", xml)
    member = ZipMember(plain.name, plain.data, plain.declared_size, plain.crc, method, flags)
    return zip_archive([member])


# --- PDF -------------------------------------------------------------------------------------


def pdf_document(objects: list[bytes]) -> bytes:
    """A PDF of ``objects`` (object 1 is the catalog) with an exact cross-reference table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _stream(data: bytes, *, flate: bool = False) -> bytes:
    flate_filter = b" /Filter /FlateDecode" if flate else b""
    return b"<< /Length %d%s >>\nstream\n" % (len(data), flate_filter) + data + b"\nendstream"


_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def pdf_pages(contents: list[bytes], *, flate: bool = False) -> bytes:
    """One page per content stream (objects: catalog, pages, font, then page + content pairs)."""
    page_refs = b" ".join(b"%d 0 R" % (4 + 2 * index) for index in range(len(contents)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (page_refs, len(contents)),
        _FONT,
    ]
    for index, content in enumerate(contents):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R"
            b" /Resources << /Font << /F1 3 0 R >> >> >>" % (5 + 2 * index)
        )
        objects.append(_stream(content, flate=flate))
    return pdf_document(objects)


def text_content(line: str) -> bytes:
    return b"BT /F1 11 Tf 72 720 Td (%s) Tj ET" % line.encode("latin-1")


def pdf_flate_bomb(expanded_bytes: int) -> bytes:
    """One page whose content stream inflates to ``expanded_bytes`` letters inside a Tj."""
    prefix, suffix = b"BT /F1 11 Tf 72 720 Td (", b") Tj ET"
    stream = zlib_run(prefix, b"a", expanded_bytes, suffix)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        _FONT,
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 5 0 R"
        b" /Resources << /Font << /F1 3 0 R >> >> >>",
        _stream(stream, flate=True),
    ]
    return pdf_document(objects)


def pdf_many_pages(pages: int) -> bytes:
    """``pages`` pages, each one sentence of a plausible job description."""
    return pdf_pages(
        [
            text_content(f"Page {number}: we build the search platform in Python and PostgreSQL.")
            for number in range(1, pages + 1)
        ]
    )


# --- text formats ----------------------------------------------------------------------------


def nested_html(depth: int) -> bytes:
    return (
        "<html><head><title>Backend Engineer</title></head><body>"
        + "<div>" * depth
        + "Python and PostgreSQL."
        + "</div>" * depth
        + "</body></html>"
    ).encode()


def unterminated_tags_html(count: int) -> bytes:
    """A short job, then ``count`` tag openings that never close (``<a<a<a...``): each one
    makes Python's html.parser (before 3.11.13) rescan the rest of the input at end of file."""
    return (
        "<html><head><title>Backend Engineer</title></head><body><p>Python and PostgreSQL.</p>"
        + "<a" * count
    ).encode()


def single_line_text(size: int) -> bytes:
    """``size`` bytes of words on one line: no sentence end, no line break anywhere."""
    words = b"python postgres lambda engineer search platform "
    return (words * (size // len(words) + 1))[:size]


def cp949_text(size: int) -> bytes:
    """Legacy-encoded Korean (CP949, no BOM), about ``size`` bytes, in short lines."""
    line = "백엔드 개발자를 찾습니다. 파이썬과 PostgreSQL 경험이 필요합니다.\n".encode("cp949")
    return line * (size // len(line))


def nested_json(depth: int) -> bytes:
    return (
        b'{"company_id": 1, "title": "Backend Engineer", "description": "Python.", "extra": '
        + b"[" * depth
        + b"]" * depth
        + b"}"
    )


def wide_json(size: int) -> bytes:
    """A valid job whose extra field is a list of empty objects, about ``size`` bytes."""
    head = b'{"company_id": 1, "title": "Backend Engineer", "description": "Python.", "extra": ['
    count = (size - len(head) - 2) // 3
    return head + b"{}," * (count - 1) + b"{}]}"


# --- the set ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostileDocument:
    name: str
    key: str  # jobs/<company_id>/<file>: the type comes from the suffix
    build: Callable[[], bytes]
    what: str


HOSTILE_DOCUMENTS = (
    HostileDocument(
        "docx_lying_zip_bomb",
        "jobs/9/lying.docx",
        lambda: docx_bomb(600 * MIB, declared_size=1024),
        "word/document.xml inflates to 600 MiB; both zip headers claim 1 KiB",
    ),
    HostileDocument(
        "docx_honest_zip_bomb",
        "jobs/9/honest.docx",
        lambda: docx_bomb(600 * MIB),
        "word/document.xml inflates to 600 MiB, as its headers say",
    ),
    HostileDocument(
        "docx_bzip2_bomb",
        "jobs/9/bzip2.docx",
        lambda: docx_bzip2_bomb(600),
        "word/document.xml bzip2-compressed: 600 MiB from 20 KB; headers claim 1 KiB",
    ),
    HostileDocument(
        "docx_deflate64",
        "jobs/9/deflate64.docx",
        lambda: docx_member_variant(method=ZIP_DEFLATE64),
        "the main part compressed with Deflate64, which Python's zipfile cannot read",
    ),
    HostileDocument(
        "docx_encrypted",
        "jobs/9/encrypted.docx",
        lambda: docx_member_variant(flags=1),
        "the main part flagged as encrypted",
    ),
    HostileDocument(
        "docx_billion_laughs",
        "jobs/9/laughs.docx",
        billion_laughs_docx,
        "a DTD whose entities would expand to 10^9 'lol's",
    ),
    HostileDocument(
        "docx_huge_attribute",
        "jobs/9/attribute.docx",
        lambda: docx_huge_attribute(60 * MIB),
        "one 60 MiB attribute in word/document.xml (under the old 64 MiB declared-size limit)",
    ),
    HostileDocument(
        "docx_many_members",
        "jobs/9/members.docx",
        lambda: docx_many_members(190_000),
        "a central directory of 190,000 entries (ZIP64) in 9.7 MB",
    ),
    HostileDocument(
        "pdf_flate_bomb",
        "jobs/9/bomb.pdf",
        lambda: pdf_flate_bomb(600 * MIB),
        "one page whose content stream inflates to 600 MiB",
    ),
    HostileDocument(
        "pdf_many_pages",
        "jobs/9/pages.pdf",
        lambda: pdf_many_pages(5_000),
        "5,000 pages of one sentence each",
    ),
    HostileDocument(
        "html_deep_nesting",
        "jobs/9/nested.html",
        lambda: nested_html(500_000),
        "500,000 nested <div> elements around one sentence",
    ),
    HostileDocument(
        "html_unterminated_tags",
        "jobs/9/unterminated.html",
        lambda: unterminated_tags_html(2_500_000),
        "a short job followed by 2,500,000 tag openings that never close (5 MB)",
    ),
    HostileDocument(
        "txt_single_line",
        "jobs/9/line.txt",
        lambda: single_line_text(9 * MIB),
        "9 MiB of words on a single line",
    ),
    HostileDocument(
        "txt_cp949_10mib",
        "jobs/9/legacy.txt",
        lambda: cp949_text(10 * MIB - 1024),
        "10 MiB of CP949 Korean (the slowest decoding path)",
    ),
    HostileDocument(
        "json_deep_nesting",
        "jobs/9/nested.json",
        lambda: nested_json(100_000),
        "a valid job whose extra field nests 100,000 arrays deep",
    ),
    HostileDocument(
        "json_wide",
        "jobs/9/wide.json",
        lambda: wide_json(10 * MIB - 1024),
        "a valid job whose extra field lists 3.5 million empty objects (10 MiB)",
    ),
)


def by_name(name: str) -> HostileDocument:
    [document] = [document for document in HOSTILE_DOCUMENTS if document.name == name]
    return document


__all__ = ["HOSTILE_DOCUMENTS", "HostileDocument", "by_name"]
