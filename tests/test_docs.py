"""The documentation site builds cleanly, and every ``docs/`` page the project cites exists.

The site (``mkdocs.yml``) is built with ``--strict``: a broken link or anchor, a page missing
from the navigation, or a docstring the API reference cannot parse fails the build. mkdocs
comes with the test extra, so a missing mkdocs is a failure here, not a skip.
"""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Where the project cites its documentation: the code, the benchmarks, the tests, the README.
CITING_PLACES = ("numlstm", "benchmarks", "tests", "examples", "README.md")
CITING_SUFFIXES = {".py", ".md"}
#: A cited page: ``docs/`` and a path ending in ``.md`` (a sentence's full stop is not part).
DOCS_CITATION = re.compile(r"\bdocs/[\w./-]*?\.md\b")


def load_docs_extension():
    """The griffe extension of ``docs/griffe_rst.py``, imported from its file."""
    spec = importlib.util.spec_from_file_location("griffe_rst", ROOT / "docs" / "griffe_rst.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_site_builds_strictly(tmp_path):
    missing = [name for name in ("mkdocs", "mkdocstrings", "mkdocstrings_handlers")
               if importlib.util.find_spec(name) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: the test extra installs the docs "
                    'packages (pip install -e ".[test]")')
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
         str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, f"mkdocs build --strict failed:\n{build.stdout}{build.stderr}"
    for page in ("index.html", "architecture/index.html", "backends/index.html",
                 "api/layers/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    # The API reference is generated, not empty: the LSTM layer's parameters are there.
    layers = (tmp_path / "site" / "api" / "layers" / "index.html").read_text(encoding="utf-8")
    assert "recurrent_dropout" in layers and "zero_output_for_mask" in layers


def cited_docs_pages():
    """Every ``docs/`` page cited in :data:`CITING_PLACES`, with where it is cited."""
    citations = {}
    for place in CITING_PLACES:
        path = ROOT / place
        files = [path] if path.is_file() else sorted(
            file for file in path.rglob("*") if file.suffix in CITING_SUFFIXES)
        for file in files:
            text = file.read_text(encoding="utf-8")
            for match in DOCS_CITATION.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                citations.setdefault(match.group(), []).append(
                    f"{file.relative_to(ROOT)}:{line}")
    return citations


def test_every_cited_docs_page_exists():
    citations = cited_docs_pages()
    assert "docs/numerics.md" in citations        # the scan finds what is certainly cited
    missing = {page: places for page, places in citations.items()
               if not (ROOT / page).is_file()}
    assert not missing, f"cited but missing: {missing}"


def test_docstring_markup_becomes_markdown():
    """The build's griffe extension: roles become code, ``::`` a colon, and grouped parameter
    entries one entry per name (griffe would give every name the first one's default)."""
    rst_to_markdown = load_docs_extension().rst_to_markdown
    docstring = ("See :func:`use_backend` and :class:`~numlstm.errors.ModelFileError`::\n\n"
                 "    code\n\nParameters\n----------\nh0, c0 : array (B, H), optional\n"
                 "    Initial states.\n\nReturns\n-------\na, b : int\n")
    assert rst_to_markdown(docstring) == (
        "See `use_backend` and `ModelFileError`:\n\n    code\n\nParameters\n----------\n"
        "h0 : array (B, H), optional\n    Initial states.\n"
        "c0 : array (B, H), optional\n    Initial states.\n\n"
        "Returns\n-------\na, b : int\n")
