"""Where a chunked request body ends, found before the parser sees its bytes.

llhttp finds the end of a chunked body only while it parses it, and parses whatever it is given: a packet holding
the body's end and pipelined requests after it would be parsed (and their requests queued) at once, and a trailer
line is buffered whole before anyone can count it. `ChunkedFraming` walks the framing ahead of the parser (chunk
size lines, data, the CRLF after it, the trailers) so that the protocol feeds the parser exactly up to the body's
end and refuses an oversized size line, trailer or framing before the parser buffers it. llhttp still checks the
syntax; a size this walk cannot read is refused here as malformed.
"""

from __future__ import annotations

import enum


class RefusedError(Exception):
    """The request breaks a limit (`status` 413, 414 or 431) or a rule of HTTP/1.1 (400): the protocol
    (`service.http_protocol`) answers with `status` and closes, whether it is raised before the parser is fed or
    from one of its callbacks."""

    def __init__(self, status: int, code: str, reason: str, field: str) -> None:
        super().__init__(reason)
        self.status, self.code, self.reason, self.field = status, code, reason, field


class _Part(enum.Enum):
    SIZE = enum.auto()  # a chunk-size line, extensions included
    DATA = enum.auto()
    DATA_END = enum.auto()  # the CRLF after a chunk's data
    TRAILERS = enum.auto()  # trailer lines, then the blank line that ends the body
    DONE = enum.auto()


class ChunkedFraming:
    """The framing of one chunked body: `take` says how many of the bytes at hand belong to it.

    Counts every byte of the body as sent (framing, extensions and trailers with the data) against `max_wire_bytes`;
    its chunks against `max_chunks` (each costs the parser's callbacks a few microseconds whatever its size: 360,000
    one-byte chunks under the byte limit held the event loop 1.3 s); each size line and trailer line against
    `max_line_bytes`, the trailers against `max_trailers` lines and `max_trailer_bytes` in all.
    """

    def __init__(
        self, *, max_wire_bytes: int, max_chunks: int, max_line_bytes: int, max_trailers: int, max_trailer_bytes: int
    ) -> None:
        self.max_wire_bytes = max_wire_bytes
        self.max_chunks = max_chunks
        self.max_line_bytes = max_line_bytes
        self.max_trailers = max_trailers
        self.max_trailer_bytes = max_trailer_bytes
        self._part = _Part.SIZE
        self._left = 0  # bytes of the current chunk's data, or of its CRLF, still to come
        self._line = bytearray()  # the size line so far
        self._line_bytes = 0  # of the current line (size or trailer) so far
        self._trailers = 0
        self._trailer_bytes = 0
        self._wire = 0
        self._chunks = 0

    @property
    def done(self) -> bool:
        return self._part is _Part.DONE

    @property
    def chunks(self) -> int:
        """Chunks of data begun so far."""
        return self._chunks

    def take(self, data: bytes, start: int, end: int, chunks: int) -> int:
        """How many bytes of `data[start:end]` the parser may take: all of them, or up to the body's end, or up to
        the start of the chunk after the `chunks` begun here (so that the protocol hands a body of tiny chunks to the
        parser a slice at a time, other connections served in between)."""
        at = start
        first = self._chunks
        while at < end and self._part is not _Part.DONE:
            if self._part is _Part.SIZE and not self._line_bytes and self._chunks - first >= chunks:
                break
            if self._part is _Part.DATA or self._part is _Part.DATA_END:
                step = min(self._left, end - at)
                at += step
                self._left -= step
                if not self._left:
                    self._part, self._left = (_Part.DATA_END, 2) if self._part is _Part.DATA else (_Part.SIZE, 0)
            else:
                at = self._line_from(data, at, end)
        self._wire += at - start
        if self._wire > self.max_wire_bytes:
            reason = (
                f"The chunked body is larger than {self.max_wire_bytes:,} bytes as sent (chunk framing, extensions "
                "and trailers included); send it in fewer, larger chunks or with a Content-Length"
            )
            raise RefusedError(413, "body_too_large", reason, "body")
        return at - start

    def _line_from(self, data: bytes, at: int, end: int) -> int:
        """Read (part of) a size or trailer line; where reading stopped."""
        room = self.max_line_bytes - self._line_bytes
        newline = data.find(b"\n", at, min(end, at + room + 1))
        stop = end if newline < 0 else newline + 1
        self._line_bytes += stop - at
        if self._line_bytes > self.max_line_bytes:
            what = "chunk size line" if self._part is _Part.SIZE else "trailer line"
            reason = f"A {what} is longer than {self.max_line_bytes:,} bytes; send shorter chunk framing and trailers"
            raise RefusedError(431 if self._part is _Part.TRAILERS else 413, _CODES[self._part], reason, "body")
        if self._part is _Part.SIZE:
            self._line += data[at:stop]
        if newline >= 0:
            self._line_ended()
        return stop

    def _line_ended(self) -> None:
        if self._part is _Part.SIZE:
            size = _chunk_size(bytes(self._line))
            self._line.clear()
            self._part, self._left = (_Part.DATA, size) if size else (_Part.TRAILERS, 0)
            self._chunks += size > 0  # the last, empty chunk ends the body: not counted
            if self._chunks > self.max_chunks:
                reason = (
                    f"The chunked body has more than {self.max_chunks:,} chunks (what its connection had left of "
                    "its chunks); send it in fewer, larger chunks (1 KB or more) or with a Content-Length"
                )
                raise RefusedError(413, "body_too_large", reason, "body")
        elif self._line_bytes <= 2:  # the blank line: the body ends here
            self._part = _Part.DONE
        else:
            self._trailers += 1
            self._trailer_bytes += self._line_bytes
            if self._trailers > self.max_trailers or self._trailer_bytes > self.max_trailer_bytes:
                reason = (
                    f"The request's trailers pass {self.max_trailers:,} lines or {self.max_trailer_bytes:,} bytes; "
                    "send fewer"
                )
                raise RefusedError(431, "headers_too_large", reason, "body")
        self._line_bytes = 0


_CODES = {_Part.SIZE: "body_too_large", _Part.TRAILERS: "headers_too_large"}


def _chunk_size(line: bytes) -> int:
    digits = line.split(b";", 1)[0].strip()
    if not digits or digits.strip(b"0123456789abcdefABCDEF"):
        raise RefusedError(400, "bad_request", f"A chunk size is not hexadecimal: {digits[:20]!r}", "body")
    return int(digits, 16)
