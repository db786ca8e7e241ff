"""What a document is, by its first bytes, and how its bytes are cut into stored chunks."""
import pytest

from voucher_service.process import documents


@pytest.mark.parametrize("head, media_type", [
    (b"%PDF-1.7\n", "application/pdf"), (b"\x89PNG\r\n\x1a\n\x00", "image/png"), (b"\xff\xd8\xff\xdb", "image/jpeg"),
    (b"%PDF", None), (b"\x89PNG\r\n", None), (b"GIF89a", None), (b" %PDF-1.4", None), (b"", None),
    (b"PK\x03\x04", None), (b"<svg", None)])
def test_the_first_bytes_decide(head, media_type):
    assert documents.media_type_of(head) == media_type


def test_chunks_are_cut_at_the_chunk_size_whatever_the_pieces():
    size = documents.CHUNK_BYTES
    pieces = [b"a" * 1000, b"b" * (size - 1000), b"c" * (size + 7), b"", b"d"]
    chunks = list(documents._rechunked(iter(pieces)))
    assert [len(c) for c in chunks] == [size, size, 8]
    assert b"".join(chunks) == b"".join(pieces)
    assert list(documents._rechunked(iter([]))) == []
