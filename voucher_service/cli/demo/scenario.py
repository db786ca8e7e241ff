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
RESERVE_FEE_FEN, RESERVE_FEN = 1_200_000, 600_000
OVER_FEE_FEN, OVER_FEN = 1_000_000, 600_000
CLAIM_FEE_FEN, CLAIM_FEN = 1_000_000, 500_000
SECOND_FEE_FEN, SECOND_FEN = 400_000, 200_000

TOKEN_TTL_DAYS = 1
ENTRIES_PAGE = 1000  # the API's largest page
STEP_WIDTH = 64
COLUMN = 14
