"""An HTTP answer's body in a one-line message (ledger/replies.py)."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from voucher_service.ledger.replies import one_line

PYTHON_HTTP_SERVER_404 = (b'<!DOCTYPE HTML>\n<html lang="en">\n    <head>\n        <meta charset="utf-8">\n'
                          b'        <title>Error response</title>\n    </head>\n    <body>\n'
                          b'        <h1>Error response</h1>\n        <p>Error code: 404</p>\n    </body>\n</html>\n')


def test_an_html_page_is_named_by_its_title():
    assert one_line(PYTHON_HTTP_SERVER_404) == "an HTML page titled 'Error response'"


def test_an_html_page_without_a_title_keeps_its_text_not_its_markup():
    assert one_line(b"<html><body><script>x()</script><p>Bad\n gateway</p></body></html>") == \
        "an HTML page: Bad gateway"


def test_a_plain_refusal_keeps_its_words():
    assert one_line(b"the checkpoint's root at size 86 is not the root\n") == \
        "the checkpoint's root at size 86 is not the root"


@given(st.binary(max_size=2000) | st.text(max_size=2000).map(str.encode))
def test_whatever_the_body_it_is_one_bounded_line(body):
    line = one_line(body, 120)
    assert "\n" not in line and "\r" not in line and len(line) <= 120


def test_a_huge_page_of_unclosed_tags_is_read_only_at_its_start():
    line = one_line(b"<html>" + b"<script " * 2_000_000)
    assert line.startswith("an HTML page") and len(line) <= 200
