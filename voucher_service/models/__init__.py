"""Tables only. Validation lives in the API schemas and the domain rules; what
must never happen whatever the code does is a database constraint here.

Timestamps are RFC 3339 UTC strings (they sort and compare as text on every
database); calendar dates are DATE columns; money is integer fen.

The tables live in one module per part of the programme; every model is
importable from here, as `from voucher_service.models import Voucher`.
"""
from voucher_service.models.access import (
    ApiToken,
    ConsoleSession,
    IdempotencyRecord,
)
from voucher_service.models.banking import (
    PayoutAccount,
    PayoutAccountChange,
)
from voucher_service.models.evidence import (
    Document,
    DocumentChunk,
    RedemptionDocument,
)
from voucher_service.models.ledger import (
    Account,
    LedgerCheckpoint,
    LedgerEntry,
    LedgerHead,
    LedgerNode,
    LedgerPosting,
    LedgerRef,
    PublisherStatus,
    SigningKeyRecord,
    WitnessStatus,
)
from voucher_service.models.payout import (
    Settlement,
    SettlementApproval,
    SettlementLine,
    SettlementRedemption,
)
from voucher_service.models.process import (
    Application,
    Redemption,
    Voucher,
)
from voucher_service.models.registry import (
    CatalogCategory,
    CatalogItem,
    CatalogProposal,
    CatalogProposalApproval,
    Enterprise,
    EnterpriseRelatedProvider,
    Policy,
    Provider,
    ProviderCategory,
    ProviderExclusion,
    Region,
)

__all__ = [
    "ConsoleSession",
    "Region",
    "Policy",
    "CatalogCategory",
    "CatalogItem",
    "CatalogProposal",
    "CatalogProposalApproval",
    "Provider",
    "ProviderCategory",
    "ProviderExclusion",
    "PayoutAccount",
    "PayoutAccountChange",
    "Enterprise",
    "EnterpriseRelatedProvider",
    "Application",
    "Voucher",
    "Redemption",
    "Document",
    "DocumentChunk",
    "RedemptionDocument",
    "Settlement",
    "SettlementLine",
    "SettlementRedemption",
    "SettlementApproval",
    "Account",
    "LedgerHead",
    "LedgerEntry",
    "LedgerRef",
    "LedgerPosting",
    "LedgerNode",
    "LedgerCheckpoint",
    "PublisherStatus",
    "SigningKeyRecord",
    "WitnessStatus",
    "ApiToken",
    "IdempotencyRecord",
]
