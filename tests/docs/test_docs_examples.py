"""Runs every python example of the documentation on the current Keras backend.

Each page's python blocks run in order in one fresh namespace, in a temporary working
directory, after `keras.backend.clear_session()`; a block followed by an Output block
must print that output (doctest rules: `...` matches anything, whitespace runs compare
equal). Conventions: tests/docs/docs_examples.py.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import time

import keras
import pytest
from docs_examples import ROOT, fenced_blocks, page_examples, pages

PAGES = [p for p in pages() if page_examples(p)]
_CHECKER = doctest.OutputChecker()
_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _ids(path):
    return str(path.relative_to(ROOT / "docs"))


@pytest.mark.parametrize("path", PAGES, ids=_ids)
def test_page_examples(path, tmp_path, monkeypatch):
    backend = keras.backend.backend()
    monkeypatch.chdir(tmp_path)
    # `model.summary()` draws its table as wide as the terminal: pin it.
    monkeypatch.setenv("COLUMNS", "80")
    keras.backend.clear_session()
    namespace: dict = {"__name__": "__main__"}
    ran = 0
    for block in page_examples(path):
        where = f"{block.page}:{block.line}"
        if block.skip or (block.backends and backend not in block.backends):
            continue
        out = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(out):
            try:
                exec(compile(block.code, where, "exec"), namespace)
            except Exception as err:
                raise AssertionError(
                    f"the example at {where} raised on {backend}:\n{block.code}"
                ) from err
        ran += 1
        if block.output is not None:
            got = out.getvalue()
            if not _CHECKER.check_output(block.output, got, _FLAGS):
                diff = _CHECKER.output_difference(
                    doctest.Example(block.code, block.output), got, _FLAGS
                )
                raise AssertionError(
                    f"the example at {where} printed other output on {backend} "
                    f"({time.perf_counter() - start:.1f} s):\n{diff}"
                )
    if ran == 0:
        pytest.skip(f"no example of {path.name} runs on {backend}")


def test_conventions_are_followed():
    # Every page parses (fences closed, markers known, Output blocks after python).
    for path in pages():
        page_examples(path)


def test_extractor_reads_markers_and_outputs(tmp_path):
    text = (
        'intro\n\n```python\nprint(1)\n```\n\n```text title="Output"\n1\n```\n\n'
        "<!-- docs-test: skip -->\n\n```python\nraise SystemExit\n```\n\n"
        "<!-- docs-test: backends=jax -->\n```python\nx = 2\n```\n"
        "```bash\nls\n```\n"
        "- item\n\n    ```python\n    y = 3\n    ```\n"
    )
    blocks = fenced_blocks(text)
    assert [b.language for b in blocks] == [
        "python",
        "text",
        "python",
        "python",
        "bash",
        "python",
    ]
    assert blocks[2].marker == "skip" and blocks[3].marker == "backends=jax"
    assert blocks[5].code == "y = 3\n"
    path = tmp_path / "page.md"
    path.write_text(text, encoding="utf-8")
    examples = page_examples(path)
    assert examples[0].output == "1\n"
    assert examples[1].skip and examples[2].backends == ("jax",)
    assert examples[1].output is None


def test_bad_marker_is_refused(tmp_path):
    path = tmp_path / "page.md"
    path.write_text(
        "<!-- docs-test: sometimes -->\n```python\npass\n```\n", encoding="utf-8"
    )
    with pytest.raises(ValueError, match="unknown docs-test marker"):
        page_examples(path)
    path.write_text('```text title="Output"\n1\n```\n', encoding="utf-8")
    with pytest.raises(ValueError, match="must follow a python block"):
        page_examples(path)
    path.write_text("```python\npass\n", encoding="utf-8")
    with pytest.raises(ValueError, match="never closed"):
        page_examples(path)
