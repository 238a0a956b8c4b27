"""Physical lines from bytes: bounded, strictly decoded, and hashed as they are read.

A line is read with a bounded ``readline``, so memory stays constant whatever the input: a line
longer than ``MAX_LINE_BYTES`` comes out as a preview marked too long, and the rest of it is
skipped in bounded chunks (still checked for NUL bytes and UTF-8). Lines end in LF or CRLF, are
decoded strictly as UTF-8, and a BOM at the start of an input is dropped. A NUL byte or invalid
UTF-8 raises ``InputError`` naming the input and the line.
"""

from __future__ import annotations

import codecs
import hashlib
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO, Final

from bulkdelete.errors import InputError

MAX_LINE_BYTES: Final = 64 * 1024
TOO_LONG: Final = f"line too long (over {MAX_LINE_BYTES} bytes)"
_LINE_READ: Final = MAX_LINE_BYTES + 2  # room for CRLF, so a line of exactly MAX_LINE_BYTES fits
_CHUNK: Final = 64 * 1024
_BOM: Final = codecs.BOM_UTF8
_LF: Final = ord("\n")
_SNIPPET: Final = 200

Line = tuple[int, str, bool]  # (physical line number, text or preview, too long)


def physical_lines(readline: Callable[[int], bytes], name: str) -> Iterator[Line]:
    """Yield ``(number, text, too long)`` for each line that ``readline`` hands out."""
    number = 0
    size = _LINE_READ + len(_BOM)  # the first read also has room for a BOM
    while chunk := readline(size):
        number += 1
        if 0 in chunk:  # int membership is a memchr; b"\0" in chunk is several times slower
            raise _nul_error(name, number)
        newline = chunk[-1] == _LF
        ended = newline or len(chunk) < size
        if number == 1:
            size = _LINE_READ
            chunk = chunk.removeprefix(_BOM)
        if newline:
            chunk = chunk[:-2] if chunk[-2:] == b"\r\n" else chunk[:-1]
        if not ended or len(chunk) > MAX_LINE_BYTES:
            yield number, _skip_long_line(chunk, ended, readline, name, number), True
            continue
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as err:
            raise _utf8_error(err, name, number) from None
        yield number, text, False


def _skip_long_line(
    head: bytes, ended: bool, readline: Callable[[int], bytes], name: str, number: int
) -> str:
    """Return a preview of an over-long line, reading and checking the rest of it in chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        preview = snippet(decoder.decode(head, final=ended))
        while not ended:
            chunk = readline(_CHUNK)
            ended = chunk[-1:] == b"\n" or len(chunk) < _CHUNK
            if 0 in chunk:
                raise _nul_error(name, number)
            decoder.decode(chunk, final=ended)
    except UnicodeDecodeError as err:
        raise _utf8_error(err, name, number) from None
    return preview


def _nul_error(name: str, number: int) -> InputError:
    message = "contains a NUL byte; is this a binary or UTF-16 file? Save it as UTF-8"
    return InputError(message, source=name, line=number)


def _utf8_error(err: UnicodeDecodeError, name: str, number: int) -> InputError:
    message = f"invalid UTF-8 (byte 0x{err.object[err.start]:02x}); save the file as UTF-8"
    return InputError(message, source=name, line=number)


def snippet(text: str, limit: int = _SNIPPET) -> str:
    """Return ``text``, cut to ``limit`` characters and marked when it was longer."""
    return text if len(text) <= limit else text[:limit] + "…"


class RawLines:
    """A bounded ``readline`` over raw reads, hashing every byte it hands out."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._buffer = bytearray()
        self._ended = False
        self._sha256 = hashlib.sha256()
        self._size = 0
        self._lock = threading.Lock()  # ``position`` is asked from the event loop's thread

    def readline(self, limit: int) -> bytes:
        """Return bytes up to the end of a line, ``limit`` at most; ``b""`` at the end."""
        while True:
            cut = self._buffer.find(b"\n", 0, limit)
            if cut >= 0:
                return self._take(cut + 1)
            if len(self._buffer) >= limit or self._ended:
                return self._take(min(limit, len(self._buffer)))
            chunk = self._read(_CHUNK)
            if chunk:
                self._buffer += chunk
            else:
                self._ended = True

    def _take(self, size: int) -> bytes:
        data = bytes(self._buffer[:size])
        del self._buffer[:size]  # bytearray drops a prefix without moving the rest
        with self._lock:
            self._sha256.update(data)
            self._size += size
        return data

    def position(self) -> tuple[int, str]:
        """Return how many bytes were handed out, and their SHA-256; any thread may ask."""
        with self._lock:
            return self._size, self._sha256.copy().hexdigest()


class HashingReader:
    """Hash and count every byte a ``readline`` hands out."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.sha256 = hashlib.sha256()
        self.size = 0

    def readline(self, limit: int) -> bytes:
        data = self._stream.readline(limit)
        self.sha256.update(data)
        self.size += len(data)
        return data
