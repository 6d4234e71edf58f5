"""Which text encoding a CSV file's bytes are in, and its text as UTF-8, block by block.

A byte-order mark (UTF-8/16/32) decides; else UTF-16 without a mark if every other byte of the
start is zero; else UTF-8 if the whole file is valid UTF-8; else cp1252, with a notice. An
`encoding=` given by the user overrides all of this. The whole file is decoded once before
any row is read, so that a byte that does not decode is reported before anything else, with
its position; the file is never held in memory whole.
"""

from __future__ import annotations

import codecs
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from campaign.loader.table import FileError

READ_SIZE = 1 << 20  # bytes read from the file at a time
HEAD_SIZE = 1 << 19  # bytes decoded to look at the start of the text (sniffing, header)

_BOMS = (  # longest first: the UTF-32 LE mark starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_BINARY = "the file is binary data, not a CSV or XLSX file"


@dataclass(frozen=True)
class Encoding:
    """How to turn the file's bytes into text."""

    codec: str  # a Python codec name
    why: str  # for messages: "utf-8", "a UTF-16 byte-order mark", 'encoding "latin-1"'…
    given: str | None = None  # the user's encoding=, as written

    @property
    def is_utf8(self) -> bool:
        """The bytes are UTF-8 already (after a byte-order mark): no need to re-encode."""
        return self.codec in ("utf-8", "utf-8-sig")


def file_chunks(path: Path, size: int = READ_SIZE) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(size):
            yield chunk


def choose_encoding(path: Path, head: bytes, given: str | None, notices: list[str]) -> Encoding:
    """The encoding of the file, checked on all of its bytes; a FileError if none fits."""
    if given is not None:
        encoding = _given_encoding(head, given)
        check_text(path, encoding)
        return encoding
    for bom, codec in _BOMS:
        if head.startswith(bom):
            encoding = Encoding(codec, "bom")
            check_text(path, encoding)
            return encoding
    if b"\x00" in head[:4096]:
        return _utf16_without_bom(path, head, notices)
    try:
        encoding = Encoding("utf-8", "utf-8")
        check_text(path, encoding)
        return encoding
    except _NotDecodable:
        pass
    try:
        encoding = Encoding("cp1252", "cp1252")
        check_text(path, encoding)
    except _NotDecodable as exc:
        raise FileError(
            "bad_encoding",
            "the file is neither UTF-8 nor Windows (cp1252) text; save it as CSV UTF-8 or "
            "give its encoding",
        ) from exc
    notices.append("read as cp1252 because it is not valid UTF-8")
    return encoding


def _given_encoding(head: bytes, given: str) -> Encoding:
    try:
        codec = codecs.lookup(given).name
    except (LookupError, TypeError, ValueError) as exc:
        raise FileError("bad_encoding", f'"{given}" is not a known encoding') from exc
    if codec == "utf-8":
        codec = "utf-8-sig"  # a byte-order mark is not part of the header
    elif codec in ("utf-16", "utf-32") and not head.startswith(
        (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    ):
        codec += "-le"
    try:
        b"\0\0\0\0".decode(codec)  # not b"": Python checks nothing for it
    except UnicodeError:
        pass  # a text encoding: whether the file is valid in it is checked below
    except LookupError as exc:  # e.g. base64: bytes to bytes, not a text encoding
        raise FileError("bad_encoding", f'the file cannot be decoded as "{given}": {exc}') from exc
    return Encoding(codec, "given", given)


def _utf16_without_bom(path: Path, head: bytes, notices: list[str]) -> Encoding:
    """UTF-16 without a byte-order mark: every other byte is zero in mostly-ASCII text."""
    head = head[:4096]
    even, odd = head[0::2].count(0), head[1::2].count(0)
    half = len(head) // 2
    if half and odd > 0.4 * half and even < 0.05 * half:
        codec = "utf-16-le"
    elif half and even > 0.4 * half and odd < 0.05 * half:
        codec = "utf-16-be"
    else:
        raise FileError("binary_file", _BINARY)
    try:
        check_text(path, Encoding(codec, "guess"))
    except _NotDecodable as exc:
        raise FileError("binary_file", _BINARY) from exc
    notices.append(f"read as {codec.upper()} (the file has no byte-order mark)")
    return Encoding(codec, "guess")


class _NotDecodable(FileError):
    """The bytes are not text in the encoding tried (the caller may try another)."""


def check_text(path: Path, encoding: Encoding) -> None:
    """Decode the whole file once, keeping nothing: a FileError names the first byte that does
    not decode; a NUL character anywhere means binary data."""
    has_nul = False
    for text in decoded_chunks(path, encoding):
        has_nul = has_nul or "\x00" in text
    if has_nul:
        raise FileError("binary_file", _BINARY)


def decoded_chunks(path: Path, encoding: Encoding) -> Iterator[str]:
    """The file's text, a piece at a time."""
    decoder = codecs.getincrementaldecoder(encoding.codec)()
    offset = 0  # bytes given to the decoder so far
    for chunk in itertools.chain(file_chunks(path), [b""]):  # b"": the end
        held = len(decoder.getstate()[0])  # bytes the decoder kept from the last chunk
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            raise _decode_error(encoding, exc, offset - held + exc.start) from exc
        except UnicodeError as exc:  # a codec that fails without a position
            raise _NotDecodable(
                "bad_encoding",
                f'the file cannot be decoded as "{encoding.given or encoding.codec}": {exc}',
            ) from exc
        offset += len(chunk)
        if text:
            yield text


def _decode_error(encoding: Encoding, exc: UnicodeDecodeError, position: int) -> FileError:
    if encoding.why == "given":
        byte = exc.object[exc.start]
        return _NotDecodable(
            "bad_encoding",
            f"the file is not valid {encoding.given}: byte 0x{byte:02x} at position {position} "
            "cannot be decoded",
        )
    if encoding.why == "bom":
        name = encoding.codec.replace("-sig", "")
        return _NotDecodable(
            "bad_encoding",
            f"the file starts with a {name.upper()} byte-order mark but is not valid {name} "
            f"text after position {position}",
        )
    return _NotDecodable("bad_encoding", f"the file is not valid {encoding.codec}")


def head_text(path: Path, encoding: Encoding, size: int = HEAD_SIZE) -> str:
    """The start of the file's text (the whole text of a small file)."""
    decoder = codecs.getincrementaldecoder(encoding.codec)()
    with path.open("rb") as f:
        data = f.read(size)
        at_end = not f.read(1)
    return decoder.decode(data, final=at_end)


def whole_text(path: Path, encoding: Encoding) -> str:
    """All of the file's text: only for the rare file whose header the start does not hold."""
    return "".join(decoded_chunks(path, encoding))


def check_not_binary(text: str) -> None:
    """Refuse text that is mostly control characters (binary data read as text)."""
    sample = text[:100_000]
    if len(_CONTROL.findall(sample)) * 100 > len(sample):
        raise FileError("binary_file", _BINARY)


def utf8_chunks(path: Path, encoding: Encoding) -> Iterator[bytes]:
    """The file's text encoded as UTF-8 (its own bytes when it is UTF-8 already), without a
    byte-order mark, a piece at a time."""
    if encoding.is_utf8:
        chunks = file_chunks(path)
        first = next(chunks, b"")
        yield first.removeprefix(codecs.BOM_UTF8) if encoding.codec == "utf-8-sig" else first
        yield from chunks
        return
    for text in decoded_chunks(path, encoding):
        yield text.encode("utf-8")
