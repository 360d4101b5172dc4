"""Each benchmark writes its own section of docs/benchmarks.md, between two marker lines.

The markers count only on lines of their own (``<!-- name:begin -->`` … ``<!-- name:end -->``),
so prose that mentions them is never taken for them. Everything outside the section is kept.
"""

from __future__ import annotations

import os
import re

NEW_DOC = "# Benchmarks\n\nMeasured on this project's machine; each section is written by its script.\n"


def replace_section(path: str, begin: str, end: str, section: str) -> None:
    """Put ``section`` (which starts with ``begin`` and ends with ``end``) in place of the old one, or append it."""
    text = open(path).read() if os.path.exists(path) else NEW_DOC
    pattern = re.compile(rf"^{re.escape(begin)}$.*?^{re.escape(end)}$", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.strip("\n"), text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section.strip("\n") + "\n"
    with open(path, "w") as f:
        f.write(text)
