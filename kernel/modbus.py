"""The 16-bit words of a Modbus value in each byte order, for the edge (decoding) and the simulators
(encoding). A = the value's most significant byte: ABCD big-endian, CDAB word-swapped, BADC
byte-swapped within each word, DCBA little-endian."""

from __future__ import annotations

from collections.abc import Sequence


def value_bytes(words: Sequence[int], order: str) -> bytes:
    """The value's bytes, most significant first, from its words as the device holds them."""
    ordered = list(words)[::-1] if order in ("CDAB", "DCBA") else list(words)
    byteorder = "little" if order in ("BADC", "DCBA") else "big"
    return b"".join(word.to_bytes(2, byteorder) for word in ordered)


def words_of(data: bytes, order: str) -> list[int]:
    """The words a device holds for a value whose bytes are `data`, most significant first."""
    byteorder = "little" if order in ("BADC", "DCBA") else "big"
    words = [int.from_bytes(data[i:i + 2], byteorder) for i in range(0, len(data), 2)]
    return words[::-1] if order in ("CDAB", "DCBA") else words
