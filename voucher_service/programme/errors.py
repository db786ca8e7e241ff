"""Outcomes of the domain that are not success. The API maps each class to a status."""


class DomainError(Exception):
    def __init__(self, rule: str, detail: str):
        super().__init__(detail)
        self.rule = rule
        self.detail = detail


class RuleViolation(DomainError):
    """A rule of the programme the request would break (budget, cap, state, ...)."""


class NotFound(DomainError):
    pass


class InvalidInput(DomainError):
    """Well-formed input that names something unusable (an unknown category, say)."""

    def __init__(self, field: str, detail: str):
        super().__init__("invalid_input", detail)
        self.field = field


class TooLarge(DomainError):
    """Input larger than the service takes (a document beyond VOUCHERS_MAX_DOCUMENT_BYTES): 413."""


class UnsupportedMediaType(DomainError):
    """Content of a type the service does not take (a document that is not PDF, PNG or JPEG): 415."""
