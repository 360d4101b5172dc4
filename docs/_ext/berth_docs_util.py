"""Small helpers shared by the reference generators: rST escaping and tables."""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"([\\*`|_\[\]<>])")


def escape(text: str) -> str:
    """Plain text → rST that renders as the same text; ```code``` and ````code```` spans become literals."""
    text = re.sub(r":[a-z]+(?::[a-z]+)?:`~?", "`", text or "")  # Sphinx roles in docstrings: keep the name
    parts = re.split(r"(``[^`]+``|`[^`\n]+`)", text)
    out = []
    for part in parts:
        if len(part) > 4 and part.startswith("``") and part.endswith("``"):
            out.append(literal(part[2:-2]))
        elif len(part) > 2 and part.startswith("`") and part.endswith("`"):
            out.append(literal(part[1:-1]))
        else:
            out.append(_SPECIAL.sub(r"\\\1", part))
    return "".join(out)


def literal(text: str) -> str:
    """An inline literal of ``text`` (spaced so that it never touches a word character)."""
    text = str(text).replace("\n", " ")
    if not text.strip():
        return repr(text)
    if "``" in text or text != text.strip():
        return ":literal:`" + text.replace("\\", "\\\\").replace("`", "\\`") + "`"
    return "``" + text + "``"


def paragraphs(text: str, indent: str = "") -> list[str]:
    """Help text as rST paragraphs (blank lines kept, the rest joined), each line indented."""
    lines: list[str] = []
    for block in re.split(r"\n\s*\n", (text or "").strip()):
        block = " ".join(line.strip() for line in block.splitlines() if line.strip())
        if block:
            lines += [indent + escape(block), ""]
    return lines


def list_table(header: list[str], rows: list[list[str]], widths: list[int] | None = None) -> list[str]:
    """A ``list-table`` whose cells are already rST."""
    lines = [".. list-table::", "   :header-rows: 1"]
    if widths:
        lines.append("   :widths: " + " ".join(str(w) for w in widths))
    lines.append("")
    for row in [header] + rows:
        for i, cell in enumerate(row):
            cell_lines = (cell or "").splitlines() or [""]
            lines.append(("   * - " if i == 0 else "     - ") + cell_lines[0])
            lines += ["       " + c for c in cell_lines[1:]]
    lines.append("")
    return lines


def heading(text: str, char: str) -> list[str]:
    text = escape(text)
    return [text, char * max(len(text), 4), ""]
