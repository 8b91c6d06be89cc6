"""Griffe extension: read the package's Keras-style docstrings as Keras writes them.

The package's docstrings follow Keras: an `Example:` line, then `>>>` lines at
the docstring's own indentation (not indented under the header). Griffe's
Google parser does not see those as an examples section, and Markdown would
read the `>>>` lines as nested block quotes (and `[a]` / `[b]` output lines as
reference links). This extension wraps every run of `>>>` / `...` / output lines
that is outside a fenced block in a `pycon` fence before the docstring is
parsed, so the examples render as highlighted code.

It also joins an argument entry whose *names* wrap over several lines
(`activation, use_bias,` / `kernel_regularizer, ...: as in Conv2D`) into one
line, which griffe's Google parser reads as one entry for the group instead of
dropping the first lines. The source is not changed.
"""

from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """`text` with each doctest run outside a fence wrapped in ```pycon fences."""
    lines = text.split("\n")
    out: list[str] = []
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
        elif not in_fence and stripped.startswith(">>>"):
            indent = line[: len(line) - len(stripped)]
            block = []
            while i < len(lines) and lines[i].strip() and lines[i].startswith(indent):
                block.append(lines[i])
                i += 1
            if out and out[-1].strip():
                out.append("")
            out += [f"{indent}```pycon", *block, f"{indent}```"]
            if i < len(lines) and lines[i].strip():
                out.append("")
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


_ARGS_HEADERS = ("Args:", "Arguments:", "Parameters:", "Params:")


def join_wrapped_names(text: str) -> str:
    """`text` with every `Args` entry whose names wrap over lines joined into one."""
    lines = text.split("\n")
    out: list[str] = []
    section_indent: int | None = None
    entry_indent: int | None = None  # the indentation of the section's entries
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if stripped in _ARGS_HEADERS:
            section_indent, entry_indent = indent, None
            out.append(line)
            continue
        if stripped and section_indent is not None:
            if indent <= section_indent:
                section_indent = entry_indent = None
            elif entry_indent is None:
                entry_indent = indent
        previous = out[-1] if out else ""
        if (
            entry_indent is not None
            and indent == entry_indent
            and stripped
            and previous.rstrip().endswith(",")
            and ":" not in previous
            and len(previous) - len(previous.lstrip()) == entry_indent
        ):
            out[-1] = f"{previous.rstrip()} {stripped}"
            continue
        out.append(line)
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Applies `fence_doctests` and `join_wrapped_names` to every docstring."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            value = join_wrapped_names(obj.docstring.value)
            obj.docstring.value = fence_doctests(value)
