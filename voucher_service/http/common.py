"""What every view needs: a domain context, pages, money fields (who may do what is http/access)."""
from __future__ import annotations

import base64
import binascii
import unicodedata

from flask import current_app, g
from flask_smorest import abort
from marshmallow import Schema, ValidationError, fields, validate

from voucher_service.db import get_session
from voucher_service.http.parsing import Blueprint  # noqa: F401 - re-exported: the views import it from here
from voucher_service.programme.context import Context

MAX_FEN = 10**12  # one trillion fen = 10 billion CNY: far above any programme's budget
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


class Fen(fields.Integer):
    """An amount of money in fen: a JSON integer, never a float, a string or a boolean."""

    def __init__(self, *, minimum: int = 1, **kwargs):
        kwargs.setdefault("validate", validate.Range(min=minimum, max=MAX_FEN))
        kwargs.setdefault("metadata", {}).setdefault("description", "integer amount in fen (0.01 CNY)")
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise ValidationError("Not a valid integer.")
        return super()._deserialize(value, attr, data, **kwargs)


def no_nul(value: str) -> None:
    # PostgreSQL text cannot hold NUL, and no name, reason or id needs one.
    if "\x00" in value:
        raise ValidationError("Must not contain NUL characters.")


class FullMatch(validate.Regexp):
    """marshmallow's Regexp, matched against the whole value.

    Regexp uses re.match, where "$" also matches before a final newline: "TS-01\n"
    would pass as a new code beside TS-01. The pattern stays as written (with
    "$") for the OpenAPI document, whose readers are JavaScript regexes.
    """

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


def Text(max_length: int, *, required: bool = True, min_length: int = 1, **kwargs):
    return fields.String(required=required, validate=[validate.Length(min=min_length, max=max_length), no_nul],
                         **kwargs)


class PageArgs(Schema):
    limit = fields.Integer(load_default=DEFAULT_PAGE_SIZE, validate=validate.Range(min=1, max=MAX_PAGE_SIZE))
    cursor = fields.String(load_default=None, validate=validate.Length(max=200))


def decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        padded = cursor.encode("ascii") + b"=" * (-len(cursor) % 4)
        value = base64.b64decode(padded, altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        value = None
    # Only the exact encoding this API hands out is a cursor.
    if not value or not value.isprintable() or encode_cursor(value) != cursor:
        abort(422, message="invalid cursor", errors={"query": {"cursor": ["Not a cursor from this API."]}})
    return value


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode("utf-8")).decode("ascii").rstrip("=")


def where_equal(query, model, args, names):
    """`query` narrowed to rows whose column equals each of these list filters given in `args`."""
    for name in names:
        if name in args:
            query = query.where(getattr(model, name) == args[name])
    return query


def page(query, id_column, args) -> dict:
    """Keyset pagination on an id column: stable under concurrent inserts."""
    after = decode_cursor(args.get("cursor"))
    if after is not None:
        query = query.where(id_column > after)
    rows = get_session().exec(query.order_by(id_column).limit(args["limit"] + 1)).all()
    more = len(rows) > args["limit"]
    rows = rows[: args["limit"]]
    return {"items": rows, "next_cursor": encode_cursor(str(getattr(rows[-1], id_column.key))) if more else None}


def page_schema(item_schema, name: str):
    return Schema.from_dict({"items": fields.List(fields.Nested(item_schema)),
                             "next_cursor": fields.String(allow_none=True)}, name=name)


def domain_context() -> Context:
    who = g.get("principal")
    keyring = current_app.extensions["vouchers_keyring"]
    session = get_session()
    ctx = Context(session=session, signer=keyring.signer_for(session), actor=who.principal_id if who else "system")
    g.domain_context = ctx  # after the view, its appended entry stamps the response
    return ctx


class LedgerStampSchema(Schema):
    seq = fields.Integer(metadata={"description": "the entry's position in the ledger"})
    leaf_hash = fields.String(metadata={"description": "base64 RFC 9162 leaf hash; keep it, then fetch "
                                                       "/ledger/receipts/{seq} for a proof"})


class ResourceSchema(Schema):
    ledger = fields.Nested(LedgerStampSchema, dump_only=True,
                           metadata={"description": "write responses only: the ledger entry the write appended"})


# CSV files for people (payout files, programme figures), opened in spreadsheets.
CSV_BOM = "\ufeff"  # so that Excel opens UTF-8 (Chinese names) correctly
FORMULA_STARTS = ("=", "+", "-", "@")
CONTROL_STARTS = ("\t", "\r", "\n")


def csv_text(value: str) -> str:
    """Text as Excel shows it, never as a formula: a provider named "=HYPERLINK(...)"
    stays a name in a finance officer's spreadsheet. Spreadsheets skip leading
    blanks (a space, NBSP, the ideographic space) and read full-width signs
    (＝, ＋, －, ＠) as the ASCII ones, so the first character after the blanks
    is compared in its NFKC form."""
    if value.startswith(CONTROL_STARTS):
        return "'" + value
    first = unicodedata.normalize("NFKC", value.lstrip()[:1])
    return "'" + value if first.startswith(FORMULA_STARTS) else value
