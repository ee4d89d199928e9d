"""Sphinx extension: render the `vml` package's plain-text docstrings as valid reStructuredText.

The package's docstrings are written for a terminal (`help()`), not for Sphinx: they use |x| for
absolute values, single backticks for code, `*` in formulas and lists that follow a paragraph
without a blank line. Each of these is an error or a warning in reStructuredText, and the book is
built with warnings as errors. This hook, run before napoleon, rewrites a docstring so that it
means in HTML what it says in a terminal:

- single-backtick spans become inline literals (a letter right after one is separated with "\\ ");
- "|" and "*" outside literals are escaped; a word ending in "_" keeps its underscore;
- a blank line is put wherever the indentation changes and before a list that follows a paragraph,
  so lists stay lists and indented blocks become block quotes instead of errors.

Docstrings that already use Google-style sections (Args:, Returns: ...) keep them: a blank line is
never put right after a section header.
"""
from __future__ import annotations

import re
from typing import Any

_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Returns|Return|Yields|Raises|Attributes|Example|Examples|"
                      r"Note|Notes|Warning|Warnings|See Also|References|Keyword Args|Other Parameters):\s*$")
_ITEM = re.compile(r"^\s*([-*]|\d+[.)])\s+\S")
_LITERAL = re.compile(r"(``.+?``)")
_SINGLE = re.compile(r"(?<![`\\])`([^`\n]+?)`(?!`)(\w?)")


def _inline(text: str) -> str:
    out = []
    for part in _LITERAL.split(text):
        if part.startswith("``") and part.endswith("``") and len(part) > 4:
            out.append(part)
            continue
        pieces = []
        last = 0
        for m in _SINGLE.finditer(part):
            pieces.append(_escape(part[last:m.start()]))
            pieces.append(f"``{m.group(1)}``" + (f"\\ {m.group(2)}" if m.group(2) else ""))
            last = m.end()
        pieces.append(_escape(part[last:]))
        out.append("".join(pieces))
    return "".join(out)


def _escape(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")
    return re.sub(r"(\w)_(?=\s|$|[.,;:)])", r"\1\\_", text)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def rewrite(lines: list[str]) -> list[str]:
    """The docstring `lines` rewritten as valid reStructuredText (see the module docstring)."""
    out: list[str] = []
    prev: str | None = None  # previous non-blank line, as written
    in_code = False
    for raw in lines:
        if not raw.strip():
            out.append("")
            prev = None
            continue
        if in_code and prev is not None and _indent(raw) <= _indent(prev) and not raw.startswith(" "):
            in_code = False
        line = raw if in_code else _inline(raw)
        if prev is not None and not in_code:
            header = bool(_SECTION.match(prev))
            new_list = _ITEM.match(raw) and not _ITEM.match(prev)
            if not header and (_indent(raw) != _indent(prev) or new_list):
                out.append("")
        out.append(line)
        if raw.rstrip().endswith("::"):
            in_code = True
        prev = raw
    return out


def _process(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    if name == "vml" or name.startswith("vml."):
        lines[:] = rewrite(lines)


def setup(app: Any) -> dict[str, Any]:
    app.connect("autodoc-process-docstring", _process, priority=100)  # before napoleon (500)
    return {"version": "1", "parallel_read_safe": True}
