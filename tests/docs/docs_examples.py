"""Extracts the code examples of the documentation pages (docs/**/*.md).

Conventions (also on the site, docs/guides/index.md "How the examples are tested"):

- A ```` ```python ```` block is run. The blocks of one page run in page order, in one
  fresh namespace, so a later block may use what an earlier one defined.
- A ```` ```text title="Output" ```` block right after a python block is the output that
  block prints. It is compared with doctest's rules: `...` stands for any text (used for
  values that differ between backends or runs, such as trained weights), and runs of
  whitespace compare equal. Everything else (parameter counts, shapes, names) must
  match.
- `<!-- docs-test: skip -->` on the line before a python block: shown, not run (the page
  says why, e.g. it needs several GPUs).
- `<!-- docs-test: backends=jax,tensorflow -->` on the line before a python block: run
  only on those Keras backends (e.g. `keras.distribution` is JAX-only).
- Other languages (```` ```bash ````, ```` ```text ````, ...) are not run.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>.*)$")
_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<what>.*?)\s*-->\s*$")


@dataclasses.dataclass
class Block:
    """One fenced code block of a page."""

    page: str
    line: int  # 1-based line of the opening fence
    language: str
    info: str
    code: str
    marker: str | None = None
    output: str | None = None  # the expected output, for python blocks

    @property
    def skip(self) -> bool:
        return self.marker == "skip"

    @property
    def backends(self) -> tuple[str, ...] | None:
        if self.marker and self.marker.startswith("backends="):
            return tuple(b.strip() for b in self.marker.split("=", 1)[1].split(","))
        return None


def fenced_blocks(text: str, page: str = "") -> list[Block]:
    """Every fenced block of a Markdown text, with the marker comment before it."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m["indent"], m["fence"], m["info"].strip()
        language = info.split()[0].lstrip("{.").rstrip("}") if info else ""
        body = []
        j = i + 1
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        while j < len(lines) and not closing.match(lines[j]):
            line = lines[j]
            body.append(
                line[len(indent) :] if line.startswith(indent) else line.lstrip()
            )
            j += 1
        if j == len(lines):
            raise ValueError(f"{page}:{i + 1}: code fence {fence!r} is never closed")
        marker = None
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        if k >= 0 and (mm := _MARKER.match(lines[k])):
            marker = mm["what"]
        blocks.append(
            Block(page, i + 1, language, info, "\n".join(body) + "\n", marker)
        )
        i = j + 1
    return blocks


def is_output(block: Block) -> bool:
    return (
        block.language == "text"
        and re.search(r'title="Output"', block.info) is not None
    )


def page_examples(path: Path) -> list[Block]:
    """The python blocks of a page, each with the output block that follows it."""
    page = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    blocks = fenced_blocks(path.read_text(encoding="utf-8"), page)
    examples: list[Block] = []
    for n, block in enumerate(blocks):
        if block.language in ("python", "py"):
            nxt = blocks[n + 1] if n + 1 < len(blocks) else None
            if nxt is not None and is_output(nxt):
                block.output = nxt.code
            examples.append(block)
        elif block.marker is not None:
            raise ValueError(
                f"{page}:{block.line}: a docs-test marker stands before a "
                f"{block.language or 'plain'} block; markers apply to python blocks"
            )
        elif is_output(block) and (
            n == 0 or blocks[n - 1].language not in ("python", "py")
        ):
            raise ValueError(
                f"{page}:{block.line}: an Output block must follow a python block"
            )
    for block in examples:
        if block.marker is not None and not (block.skip or block.backends):
            raise ValueError(
                f"{page}:{block.line}: unknown docs-test marker {block.marker!r}; "
                "expected 'skip' or 'backends=name,...'"
            )
    return examples


def pages() -> list[Path]:
    """Every Markdown page of the site (the hooks folder excluded)."""
    return sorted(p for p in DOCS.rglob("*.md") if "_hooks" not in p.parts)
