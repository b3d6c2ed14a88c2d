"""`ChunkedFraming`: where a chunked body ends, however its bytes are split, and its limits."""

from __future__ import annotations

import pytest

from service.chunked_framing import ChunkedFraming, RefusedError

BODY = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Checksum: 1\r\n\r\n"
NEXT = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


def _framing(**limits: int) -> ChunkedFraming:
    defaults = {"max_wire_bytes": 10_000, "max_chunks": 10, "max_line_bytes": 100, "max_trailers": 4}
    return ChunkedFraming(**{**defaults, "max_trailer_bytes": 200, **limits})


@pytest.mark.parametrize("step", [1, 2, 3, 7, len(BODY) + len(NEXT)])
def test_the_body_ends_exactly_where_it_ends_however_it_is_split(step: int) -> None:
    data = BODY + NEXT
    framing = _framing()
    taken = 0
    for start in range(0, len(data), step):
        end = min(start + step, len(data))
        at = max(start, taken)
        if at < end and not framing.done:
            taken += framing.take(data, at, end, 1_000)
    assert framing.done
    assert taken == len(BODY)


@pytest.mark.parametrize(
    ("data", "limits", "status"),
    [
        (b"1;" + b"e" * 200 + b"\r\nx\r\n", {}, 413),  # a size line past the line limit
        (b"0\r\nX-T: " + b"a" * 200, {}, 431),  # an unfinished trailer line past it
        (b"0\r\n" + b"X: y\r\n" * 5 + b"\r\n", {}, 431),  # more trailers than allowed
        (b"1\r\nx\r\n" * 20, {"max_wire_bytes": 100}, 413),  # framing counts toward the body limit
        (b"zz\r\n", {}, 400),
        (b"1\r\nx\r\n" * 11, {}, 413),  # more chunks than allowed, however small the body
    ],
    ids=["size-line", "trailer-line", "trailer-count", "wire-bytes", "not-hex", "chunk-count"],
)
def test_framing_past_its_limits_is_refused_before_it_is_fed(data: bytes, limits: dict[str, int], status: int) -> None:
    with pytest.raises(RefusedError) as refused:
        _framing(**limits).take(data, 0, len(data), 1_000)
    assert refused.value.status == status


def test_the_chunk_limit_counts_chunks_of_data_not_bytes_nor_the_last_empty_chunk() -> None:
    """Issue 21 (N3): 360,000 one-byte chunks held the event loop 1.3 s. The limit counts chunks: ten of any size
    pass (with the empty one that ends the body), an eleventh is refused."""
    body = b"400\r\n" + b"a" * 1024 + b"\r\n"
    data = body * 10 + b"0\r\n\r\n"
    framing = _framing(max_wire_bytes=20_000)
    assert framing.take(data, 0, len(data), 1_000) == len(data)
    assert framing.done


def test_a_body_of_many_chunks_is_taken_a_slice_at_a_time() -> None:
    """`take` stops before the chunk after the ones it may begin in one call: the protocol feeds the parser a
    slice of a tiny-chunk body per turn of the event loop, and the next call goes on where it stopped."""
    data = b"1\r\nx\r\n" * 6 + b"0\r\n\r\n"
    framing = _framing()
    taken = framing.take(data, 0, len(data), 4)
    assert taken == 4 * len(b"1\r\nx\r\n")
    assert framing.take(data, taken, len(data), 4) == len(data) - taken
    assert framing.done
