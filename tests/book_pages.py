"""Shared by the book tests: where the built HTML is, which pages the table of contents lists, and
the internal links of a built page (with the ids each target page defines)."""
from __future__ import annotations

import json
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"


def chapters() -> list[str]:
    """The documents of `_toc.yml` in reading order (root first), without suffix."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    docs = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for e in entries:
            if "file" in e:
                docs.append(e["file"])
            walk(e.get("sections", []))

    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        walk(part.get("chapters", []))
    return docs


def built() -> bool:
    """Whether the book has been built (every chapter page exists)."""
    return all((HTML / f"{doc}.html").exists() for doc in chapters())


def expected_images(doc: str) -> int:
    """How many figures a chapter must show: the image outputs stored in its notebook (0 for Markdown)."""
    nb = ROOT / f"{doc}.ipynb"
    if not nb.exists():
        return 0
    cells = json.loads(nb.read_text())["cells"]
    return sum(1 for c in cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if a.get("name") and tag == "a":
            self.ids.add(a["name"])
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if tag == "img" and a.get("src"):
            self.srcs.append(a["src"])


@lru_cache(maxsize=None)
def parse(path: Path) -> _Collector:
    """The ids, link targets and image sources of one HTML file."""
    c = _Collector()
    c.feed(path.read_text(encoding="utf-8", errors="replace"))
    return c


def broken_links(page: Path, hrefs: list[str] | None = None) -> list[str]:
    """Internal links of `page` whose file, or whose #anchor in that file, does not exist.

    `hrefs` are the page's link targets (default: those in the HTML file); external links
    (http:, https:, mailto:, ...) are not checked.
    """
    bad = []
    for href in parse(page).hrefs if hrefs is None else hrefs:
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or href.startswith("javascript:"):
            continue
        target = page if not parts.path else (page.parent / unquote(parts.path)).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            bad.append(f"{href} (no file {target.relative_to(HTML.resolve()) if target.is_relative_to(HTML.resolve()) else target.name})")
            continue
        frag = unquote(parts.fragment)
        if frag and target.suffix == ".html" and frag not in parse(target).ids:
            bad.append(f"{href} (no id {frag!r} in {target.name})")
    return bad
