"""Public figures of the programme (DESIGN §8), computed from the ledger's postings."""
