"""The console speaks Chinese: every string of its code and templates has a
Chinese translation, keeps its placeholders, and the committed compiled
catalogue is the .po's (`make translations` after changing a string)."""
from __future__ import annotations

import io
import os
import re

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CATALOGUE = os.path.join(REPO, "voucher_service", "console", "translations", "zh", "LC_MESSAGES")
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@pytest.fixture(scope="module")
def catalogue():
    with open(os.path.join(CATALOGUE, "messages.po"), "rb") as handle:
        return read_po(handle, locale="zh")


def source_strings() -> set[str]:
    method_map = [("voucher_service/console/**.py", "python"),
                  ("voucher_service/console/templates/**.html", "jinja2")]
    keywords = {**DEFAULT_KEYWORDS, "_l": None}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(REPO, method_map, keywords=keywords):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_string_of_the_console_has_chinese(catalogue):
    strings = source_strings()
    assert strings, "nothing extracted: the extraction map is wrong"
    missing = sorted(s for s in strings if not (catalogue.get(s) and catalogue.get(s).string))
    assert not missing, f"{len(missing)} strings without Chinese (run make translations, then translate): {missing[:10]}"
    fuzzy = sorted(m.id for m in catalogue if m.id and m.fuzzy)
    assert not fuzzy, fuzzy


def test_translations_keep_their_placeholders(catalogue):
    for message in catalogue:
        if message.id and message.string:
            assert set(PLACEHOLDER.findall(message.id)) == set(PLACEHOLDER.findall(message.string)), message.id


def test_the_compiled_catalogue_is_the_po_files(catalogue):
    compiled = io.BytesIO()
    write_mo(compiled, catalogue)
    with open(os.path.join(CATALOGUE, "messages.mo"), "rb") as handle:
        assert handle.read() == compiled.getvalue(), "messages.mo is stale: make translations"
