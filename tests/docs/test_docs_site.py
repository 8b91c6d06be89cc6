"""The documentation site builds with warnings as errors, every internal link in the
built HTML resolves, and every public class and function has its docstring in the API
reference.

The build takes a few seconds and does not depend on the Keras backend, so it runs
once: under KERAS_BACKEND=jax (the suite runs once per backend).
"""

from __future__ import annotations

import html
import html.parser
import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

import keras
import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_BACKEND = "jax"


def _hook_module():
    spec = importlib.util.spec_from_file_location(
        "_docs_api_pages", ROOT / "docs" / "_hooks" / "api_pages.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if keras.backend.backend() != BUILD_BACKEND:
        pytest.skip(
            f"the docs build is checked once, under KERAS_BACKEND={BUILD_BACKEND}"
        )
    pytest.importorskip(
        "mkdocs", reason='the docs extra is not installed: pip install -e ".[docs]"'
    )
    pytest.importorskip(
        "mkdocstrings_handlers.python", reason="mkdocstrings[python] missing"
    )
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (
        "`mkdocs build --strict` failed (bash scripts/docs.sh shows the same):\n"
        + proc.stderr[-6000:]
    )
    return out


class _Page(html.parser.HTMLParser):
    """Collects the ids and the link targets of one HTML page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key) and (key == "id" or tag == "a"):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) is not None:
                self.links.append((tag, attrs[key]))

    def handle_data(self, data):
        self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _is_internal(url: str) -> bool:
    parsed = urllib.parse.urlsplit(url)
    return not (parsed.scheme or url.startswith("//"))


def test_site_builds_strict(site):
    assert (site / "index.html").exists()
    assert (site / "reference" / "layers" / "index.html").exists()


def broken_links(site: Path) -> tuple[list[str], int]:
    """Internal links of the built site whose file or anchor does not exist."""
    pages = {p: _parse(p) for p in site.rglob("*.html")}
    broken = []
    checked = 0
    for path, page in pages.items():
        for tag, url in page.links:
            if not _is_internal(url) or url.startswith(
                ("mailto:", "javascript:", "data:")
            ):
                continue
            target, _, fragment = url.partition("#")
            target = urllib.parse.unquote(target)
            if target:
                # 404.html links from the site root; every other page relatively.
                base = site if target.startswith("/") else path.parent
                dest = (base / target.lstrip("/")).resolve()
                if dest.is_dir() or target.endswith("/"):
                    dest = dest / "index.html"
            else:
                dest = path
            checked += 1
            if not dest.exists():
                broken.append(
                    f"{path.relative_to(site)}: <{tag}> {url} (no {dest.name})"
                )
                continue
            if fragment and dest.suffix == ".html":
                ids = pages[dest].ids if dest in pages else _parse(dest).ids
                if urllib.parse.unquote(fragment) not in ids:
                    broken.append(
                        f"{path.relative_to(site)}: {url} (no anchor #{fragment})"
                    )
    return broken, checked


def test_every_internal_link_resolves(site):
    broken, checked = broken_links(site)
    assert checked > 100, f"only {checked} internal links found: is the site empty?"
    assert not broken, "broken internal links:\n" + "\n".join(broken)


def test_link_checker_finds_broken_links(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "index.html").write_text(
        '<a href="a/">ok</a><a href="a/#here">ok</a><a href="#top" id="top">ok</a>'
        '<a href="b/">no page</a><a href="a/#gone">no anchor</a>'
        '<a href="https://example.org/x">external</a><img src="/missing.png">'
    )
    (tmp_path / "a" / "index.html").write_text(
        '<h2 id="here">x</h2><a href="../">up</a>'
    )
    broken, checked = broken_links(tmp_path)
    assert checked == 7
    assert sorted(b.split(": ", 1)[1] for b in broken) == [
        "<a> b/ (no index.html)",
        "<img> /missing.png (no missing.png)",
        "a/#gone (no anchor #gone)",
    ]


def _plain(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[`*]", "", text)).strip()


def test_every_public_name_has_its_docstring_in_the_reference(site):
    hook = _hook_module()
    modules = hook.public_modules()
    assert "keras_sparse.layers" in modules and "keras_sparse.connectivity" in modules
    missing = []
    documented = 0
    for module_name in modules:
        page_file = site / hook.page_path(module_name).replace(".md", "/index.html")
        page = _parse(page_file)
        text = _plain(html.unescape("".join(page.text)))
        paths = dict(hook.member_paths(module_name) or [])
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            # Where a submodule shadows the name for griffe (`training.sparsify`),
            # the hook renders it under its defining path.
            anchor = paths.get(name, f"{module_name}.{name}")
            doc = inspect.getdoc(obj)
            if not doc:
                missing.append(f"{anchor}: no docstring")
            elif anchor not in page.ids:
                missing.append(f"{anchor}: not on {page_file.relative_to(site)}")
            elif _plain(doc.splitlines()[0])[:40] not in text:
                missing.append(f"{anchor}: summary line not rendered")
            else:
                documented += 1
    assert not missing, "\n".join(missing)
    assert documented >= 30


def test_top_level_names_are_documented(site):
    import keras_sparse

    hook = _hook_module()
    ids = set()
    for module_name in hook.public_modules():
        ids |= _parse(
            site / hook.page_path(module_name).replace(".md", "/index.html")
        ).ids
    for name in keras_sparse.__all__:
        obj = getattr(keras_sparse, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert any(i.endswith(f".{name}") for i in ids), name


def test_connectivity_figure_is_what_its_script_draws():
    spec = importlib.util.spec_from_file_location(
        "_connectivity_figure", ROOT / "docs" / "_scripts" / "connectivity_figure.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (ROOT / "docs" / "assets" / "connectivity.svg").read_text(
        encoding="utf-8"
    )
    assert committed == module.svg(), "run: python docs/_scripts/connectivity_figure.py"


def test_doctest_examples_are_fenced_for_rendering():
    spec = importlib.util.spec_from_file_location(
        "_griffe_doctest", ROOT / "docs" / "_hooks" / "griffe_doctest.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    doc = (
        "Summary.\n\nExample:\n\n>>> x = [1,\n...      2]\n>>> x\n[1, 2]\n\nAfter.\n"
        "```python\n>>> inside_a_fence\n```\n    >>> indented\n    1\nEnd."
    )
    assert module.fence_doctests(doc) == (
        "Summary.\n\nExample:\n\n```pycon\n>>> x = [1,\n...      2]\n>>> x\n"
        "[1, 2]\n```\n\nAfter.\n```python\n>>> inside_a_fence\n```\n\n"
        "    ```pycon\n    >>> indented\n    1\n    ```\n\nEnd."
    )


def test_reference_pages_have_no_blockquoted_doctests(site):
    # Unfenced `>>>` lines would render as nested <blockquote>s.
    for page in (site / "reference").rglob("index.html"):
        assert "<blockquote>" not in page.read_text(encoding="utf-8"), page


def test_wrapped_argument_names_are_joined():
    spec = importlib.util.spec_from_file_location(
        "_griffe_doctest", ROOT / "docs" / "_hooks" / "griffe_doctest.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    doc = (
        "Summary, with a comma,\nand more.\n\nArgs:\n    filters: int.\n"
        "    activation, use_bias,\n    kernel_constraint: as in Conv2D;\n"
        "        regularizers act on values,\n        shape (nnz,).\n"
        "    implementation: str.\n\nReturns:\n    a, b,\n    c.\n"
    )
    assert module.join_wrapped_names(doc) == (
        "Summary, with a comma,\nand more.\n\nArgs:\n    filters: int.\n"
        "    activation, use_bias, kernel_constraint: as in Conv2D;\n"
        "        regularizers act on values,\n        shape (nnz,).\n"
        "    implementation: str.\n\nReturns:\n    a, b,\n    c.\n"
    )
