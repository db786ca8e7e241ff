"""How every view reads its arguments: webargs' parser, refusing what JSON can
say but the service cannot store, for every field of every endpoint at once.

Views take `Blueprint` from http/common.py; flask-smorest hands their
arguments to its ARGUMENTS_PARSER, the `Parser` here, so no schema and no
field needs a check of its own.

JSON can spell a lone surrogate ("\\ud800"): Python decodes it to a str that
UTF-8, and so SQLite, PostgreSQL and the response encoder, cannot encode. The
parser refuses one anywhere in a body, value, list item or object key, with a
422 naming where it is. Query strings and paths cannot carry one: werkzeug
decodes them from bytes as UTF-8 with replacement, so a surrogate's bytes
arrive as U+FFFD (tests/functional/security/test_unicode_input.py).
"""
from __future__ import annotations

import re

import flask_smorest
from marshmallow import ValidationError
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import CombinedMultiDict

LONE_SURROGATE = re.compile("[\ud800-\udfff]")
LONE_SURROGATE_MESSAGE = "Must be valid Unicode: a lone surrogate (U+D800 to U+DFFF) cannot be stored."
# Enough for a client to find its mistake; a body full of them must not make an answer as large.
MAX_REPORTED = 20


def _printable_key(key: str) -> str:
    # The key is echoed in the errors: it must itself be encodable.
    return LONE_SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", key)


def lone_surrogates(data) -> dict:
    """Where decoded JSON `data` holds a lone surrogate, as marshmallow nests
    messages ({"field": {0: [...]}}); empty when it holds none.

    Iterative: a body as deep as the JSON decoder allows must not exhaust the stack here.
    """
    found: list[tuple] = []
    pending = [(data, ())]
    while pending and len(found) < MAX_REPORTED:
        value, path = pending.pop()
        if isinstance(value, str):
            if LONE_SURROGATE.search(value):
                found.append(path)
        elif isinstance(value, dict):
            for key, item in value.items():
                name = _printable_key(key) if isinstance(key, str) else key
                if name != key:
                    found.append(path + (name,))
                pending.append((item, path + (name,)))
        elif isinstance(value, list):
            pending.extend((item, path + (index,)) for index, item in enumerate(value))
    messages: dict = {}
    for path in sorted(found, key=lambda p: [str(part) for part in p]):
        if not path:
            messages = {"_schema": [LONE_SURROGATE_MESSAGE]}
            break
        node = messages
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break  # already reported higher up (a refused key and its value)
        else:
            if not isinstance(node.get(path[-1]), dict):
                node[path[-1]] = [LONE_SURROGATE_MESSAGE]
    return messages


class Parser(FlaskParser):
    """webargs' parser, also refusing JSON that Python or the database cannot take.

    A body nested thousands deep (RecursionError) or an integer of thousands of
    digits (ValueError) is bad input: a 400 problem, never a 500. A lone
    surrogate is a 422, as any other invalid value.
    """

    def load_json(self, req, schema):
        try:
            data = super().load_json(req, schema)
        except (RecursionError, ValueError) as exc:
            return self._handle_invalid_json_error(exc, req)
        where = lone_surrogates(data)
        if where:
            raise ValidationError(where)
        return data

    def load_files(self, req, schema):
        """A multipart/form-data body: its files and its text fields, in one schema
        (OpenAPI has one requestBody, so `kind` and `file` of an upload share one).
        werkzeug spools each file to a temporary file as it parses: the view reads
        it back in chunks, never whole."""
        return self._makeproxy(CombinedMultiDict([req.files, req.form]), schema)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = Parser()
