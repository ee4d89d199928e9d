"""The built book, read as files (no browser needed): every chapter of `_toc.yml` has a page, every
internal link of every page resolves to a file and anchor, and no page shows a machine path."""
from __future__ import annotations

import re

import pytest

from book_pages import HTML, broken_links, built, chapters, parse

pytestmark = pytest.mark.slow  # needs the built book, which `make test` builds first


@pytest.fixture(autouse=True, scope="module")
def book_is_built():
    # fail, not skip: a missing build is exactly what these tests are there to catch
    if not built():
        pytest.fail("the book is not built: run `make book` (`make test` builds it before the tests)")

PAGES = sorted(p for p in HTML.rglob("*.html") if "_static" not in p.parts) if HTML.exists() else []


def test_every_chapter_has_a_page():
    missing = [doc for doc in chapters() if not (HTML / f"{doc}.html").exists()]
    assert not missing


def test_the_front_pages_chapter_table_links_every_chapter():
    # the second test (chapter 7c) and chapter 11 were once missing from it
    from book_pages import ROOT
    index = (ROOT / "book" / "index.md").read_text()
    linked = {str((ROOT / "book" / doc).resolve().relative_to(ROOT)) for doc in re.findall(r"\{doc\}`([^`]+)`", index)}
    missing = [doc for doc in chapters()[1:] if doc not in linked]
    assert not missing, f"book/index.md links no chapter {missing}"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(HTML)) for p in PAGES])
def test_internal_links_resolve(page):
    assert not broken_links(page)


@pytest.mark.parametrize("doc", chapters())
def test_images_exist(doc):
    page = HTML / f"{doc}.html"
    missing = [s for s in parse(page).srcs if not s.startswith(("http:", "https:", "data:"))
               and not (page.parent / s).exists()]
    assert not missing


# built from parts, so that this file does not itself contain the paths it looks for
MACHINE_PATH = re.compile("(" + "|".join(f"/{d}/" for d in ("work", "tmp", "home", "root")) + r")[\w.-]")


@pytest.mark.parametrize("doc", chapters())
def test_no_machine_paths(doc):
    text = re.sub(r"<[^>]+>", " ", (HTML / f"{doc}.html").read_text(encoding="utf-8"))
    assert not MACHINE_PATH.findall(text), f"{doc} shows a path of the machine it was built on"


def _article_text(page, sep: str = " ") -> str:
    """The visible text of a page's article (the chapter, without the sidebar and the page's header);
    `sep` replaces each tag (\"\" keeps highlighted code whole: its tokens are separate spans)."""
    html = page.read_text(encoding="utf-8", errors="replace")
    start, end = html.find("<article"), html.rfind("</article>")
    body = html[start:end] if start >= 0 and end > start else html
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", sep, body))


@pytest.mark.parametrize("doc", chapters())
def test_no_typed_chapter_number(doc):
    """Chapters are named by links ({doc}), not by typed numbers: a typed number follows the file name,
    not the sidebar ("chapter 10" was the sidebar's 11, "chapter 7b" does not exist)."""
    text = _article_text(HTML / f"{doc}.html")
    typed = re.findall(r"\bchapters?\s+\d+[a-z]?\b", text, flags=re.I)
    assert not typed, f"{doc}: typed chapter numbers {typed}"


@pytest.mark.parametrize("doc", chapters())
def test_no_bookkeeping_code_shown(doc):
    """Cells that glue numbers into the prose, train missing runs or list the store are hidden."""
    if doc == "book/api":
        pytest.skip("the API reference names these helpers on purpose")
    text = _article_text(HTML / f"{doc}.html", sep="")
    shown = [k for k in ("book.glue(", "book.fill(", "book.glue_answer(", "stored_and_missing(") if k in text]
    assert not shown, f"{doc}: bookkeeping code shown: {shown}"


def test_launch_buttons_point_at_this_books_repository():
    """A Colab or Binder link must open this book's repository (`repository.url` in `_config.yml`); with
    none set there must be none (Jupyter Book would fill in its own default repository)."""
    import yaml

    # the configuration the build used (scripts/book_config.py); the committed one for a plain build
    used = HTML.parent / "_config.yml"
    config = yaml.safe_load((used if used.exists() else HTML.parents[1] / "_config.yml").read_text())
    url = (config.get("repository") or {}).get("url", "")
    repo = "/".join(url.rstrip("/").split("/")[-2:]) if url else None
    launch = [h for p in PAGES for h in parse(p).hrefs if "mybinder.org" in h or "colab.research.google" in h]
    wrong = [h for h in launch if repo is None or repo not in h]
    assert not wrong, f"launch links that do not open this book's repository ({url or 'none set'}): {wrong[:3]}"


@pytest.mark.parametrize("doc", chapters())
def test_every_figure_has_a_caption_and_real_alt_text(doc):
    """Each image in a chapter says what it shows (alt text in words, not its file name) and sits in a
    numbered figure with a caption."""
    html = (HTML / f"{doc}.html").read_text(encoding="utf-8", errors="replace")
    start, end = html.find("<article"), html.rfind("</article>")
    body = html[start:end] if start >= 0 and end > start else html
    imgs = re.findall(r"<img\b[^>]*>", body)
    alts = [(re.search(r'\balt="([^"]*)"', i) or [None, ""])[1] for i in imgs]
    bad = [a for a in alts if not a.strip() or re.search(r"\.(png|svg|jpe?g)$", a) or "/" in a]
    assert not bad, f"{doc}: images without alt text in words: {bad[:3]}"
    figures = body.count('<figure') + body.count('class="figure')
    assert figures >= len(imgs) - body.count("mjx"), f"{doc}: {len(imgs)} images but {figures} captioned figures"
