"""An HTTP answer's body as part of a one-line message.

Here because the three clients of the ledger's HTTP formats — the operator's
publisher asking witnesses, a verifying witness reading the log, and the
auditor's tools (monitor, demo) — share nothing but this pure package. A
refusal from a proxy or a misconfigured URL is often an HTML page: its markup
and line breaks would otherwise spread over stderr, logs and stored statuses.
"""
from __future__ import annotations

import re

MAX_READ = 16 << 10
_MARKUP = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->|<[^>]*>", re.IGNORECASE | re.DOTALL)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)


def one_line(body: bytes | str, limit: int = 200) -> str:
    """The body's text on one line: an HTML page's title (or its text without
    markup), whitespace folded, cut at `limit` characters with an ellipsis."""
    # Only the start is read: an error body can be large, and the markup pattern is not
    # linear on a page full of unclosed tags.
    text = body[:MAX_READ].decode("utf-8", "replace") if isinstance(body, bytes) else body[:MAX_READ]
    if re.search(r"<(!doctype\s+html|html)\b", text[:1024], re.IGNORECASE):
        title = _TITLE.search(text)
        text = "an HTML page" + (f" titled {' '.join(title.group(1).split())!r}" if title else
                                 f": {_MARKUP.sub(' ', text)}")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"
