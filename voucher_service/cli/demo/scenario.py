"""Who the demo is and what it spends: one Kunshan enterprise, one Shanghai provider, the amounts,
and the demo's own limits."""
from __future__ import annotations

HTTP_TIMEOUT_S = 30

ENTERPRISE_ID = "ent-ks-003"   # a Kunshan enterprise with no related providers
HOME_REGION = "KS"             # issues (and pays for) the voucher
PROVIDER_ID = "prv-sh-001"     # a Shanghai provider accredited for testing and instruments
PROVIDER_REGION = "SH"
CATALOG_CODE = "TS-01"         # product testing and inspection, at most 50%
SECOND_CATALOG_CODE = "IN-01"  # shared use of large instruments, at most 50%

FACE_FEN = 2_000_000
# Service fees; what the voucher pays of each is the subsidy ratio in effect
# (the stricter of the item's and the issuing region's), read from the API at
# the start, so the demo still runs after an officer lowers a ratio.
RESERVE_FEE_FEN = 1_200_000
OVER_FEE_FEN, OVER_BY_FEN = 1_000_000, 100_000  # asks 1,000.00 CNY more than the ratio allows
CLAIM_FEE_FEN = 1_000_000                       # below the reserved fee: the claim releases part of the hold
SECOND_FEE_FEN = 400_000

TOKEN_TTL_DAYS = 1
ENTRIES_PAGE = 1000  # the API's largest page
STEP_WIDTH = 64
COLUMN = 14


def demo_pdf(text: str) -> bytes:
    """A one-page PDF saying `text` (ASCII): the demo's contract and invoice. Unique per
    redemption, so that a second run's documents evidence its own claim, not the first's."""
    safe = text.encode("ascii", "replace").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    stream = b"BT /F1 12 Tf 72 720 Td (" + safe + b") Tj ET"
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
