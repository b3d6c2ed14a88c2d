"""Read the project's Markdown-style code spans in docstrings (`name`) as reStructuredText literals.

The code base writes docstrings for people reading the source, with single-backtick code spans as in Markdown. In
reStructuredText a single backtick means "interpreted text" and breaks when a letter follows the closing backtick
(`ApiError`s). This turns every bare single-backtick span into a ``literal``, leaving Sphinx roles
(:class:`Name`), double-backtick literals and hyperlink references (`text <url>`_) alone.
"""

from __future__ import annotations

import re
from typing import Any

from sphinx.application import Sphinx

_SPAN = re.compile(r"(?<![`:\\])`(?!`)([^`\n]+?)`(?![`_])")
_WORD = re.compile(r"\w")


def literal_spans(line: str) -> str:
    """One docstring line with its single-backtick spans as escaped-safe double-backtick literals."""

    def replace(match: re.Match[str]) -> str:
        text = match.group(1)
        if re.search(r"<[^>]+>$", text):  # `text <url>` hyperlink without the trailing underscore
            return match.group(0)
        before = line[match.start() - 1] if match.start() > 0 else " "
        after = line[match.end()] if match.end() < len(line) else " "
        left = "\\ " if _WORD.match(before) else ""
        right = "\\ " if _WORD.match(after) else ""
        return f"{left}``{text}``{right}"

    return _SPAN.sub(replace, line)


def _process(app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    lines[:] = [literal_spans(line) for line in lines]


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("autodoc-process-docstring", _process, priority=400)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
