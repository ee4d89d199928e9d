"""The built book in headless Chromium: each chapter page loads, shows its figures (decoded, natural
width > 0), fits its tables in the text column with every cell in full (none cut off with "...") and
has no broken internal link; a screenshot of each goes to `_build/screenshots/`.

Needs the built book (`make book`; `make test` builds it first) and Debian's `chromium` and
`chromium-driver` (`make browser` installs them where we are root). Without them the tests skip
and say which is missing.
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from book_pages import HTML, SCREENSHOTS, broken_links, built, chapters, expected_images

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not built(), reason="the book is not built: run `make book` (or `make test`, which builds it)"),
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH: install Debian's chromium (`make browser`)"),
    pytest.mark.skipif(CHROMEDRIVER is None,
                       reason="no chromedriver on PATH: install Debian's chromium-driver (`make browser`)"),
]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,1000"]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def base_url():
    """The built HTML served on a loopback port (pages behave as on GitHub Pages, not as file://)."""
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_AVOID_STATS", "true")  # Selenium Manager: no telemetry, nothing to fetch
    profile = tempfile.mkdtemp(prefix="vml-book-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _wait(drv, script: str, timeout: float = 20.0) -> object:
    end = time.monotonic() + timeout
    while True:
        value = drv.execute_script(script)
        if value or time.monotonic() > end:
            return value
        time.sleep(0.1)


IMAGES_JS = """
return Array.from(document.querySelectorAll('main img, article img, .bd-article img')).map(
  i => ({src: i.getAttribute('src'), complete: i.complete, w: i.naturalWidth, h: i.naturalHeight}));
"""
MATHJAX_JS = """
const done = arguments[arguments.length - 1];
if (!document.querySelector('.math')) { done(true); }
else if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
  MathJax.startup.promise.then(() => done(true)).catch(e => done(String(e)));
} else { done('MathJax is not loaded'); }
"""
FONTS_JS = """
const done = arguments[arguments.length - 1];
document.fonts.ready.then(() => done(Array.from(document.fonts).filter(
  f => f.family.replace(/"/g, '').startsWith('MJX') && f.status === 'error').map(f => f.family)));
"""
PAINTED_JS = """
const done = arguments[arguments.length - 1];
requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(() => done(true), 300)));
"""
WIDE_TABLES_JS = """
const art = (document.querySelector('article.bd-article') || document.body).getBoundingClientRect();
return Array.from(document.querySelectorAll('table')).filter(
  t => t.getBoundingClientRect().right > art.right + 1).map(t => t.innerText.slice(0, 80).replace(/\\s+/g, ' '));
"""
TRUNCATED_JS = """
return Array.from(document.querySelectorAll('table td, table th')).map(c => c.innerText.trim()).filter(
  t => t.endsWith('...') || t.endsWith('…'));
"""
LINKS_JS = "return Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'));"


@pytest.mark.parametrize("doc", chapters())
def test_chapter_page(doc, driver, base_url):
    driver.get(base_url + f"{doc}.html")
    assert _wait(driver, "return document.readyState === 'complete'"), f"{doc}: page did not finish loading"
    title = driver.execute_script("const h = document.querySelector('main h1, article h1'); "
                                  "return h ? h.textContent.trim() : '';")
    assert title, f"{doc}: no chapter title (h1) in the page"
    assert "404" not in driver.title, f"{doc}: {driver.title}"

    # equations: MathJax (served with the book) has typeset every one of them
    driver.set_script_timeout(30)
    typeset = driver.execute_async_script(MATHJAX_JS)
    assert typeset is True, f"{doc}: MathJax did not finish: {typeset}"
    raw = driver.execute_script("return Array.from(document.querySelectorAll('.math')).filter("
                                "m => !m.querySelector('mjx-container') && !m.closest('mjx-container')).length")
    assert raw == 0, f"{doc}: {raw} equations left as raw TeX"
    # CHTML output draws glyphs with MathJax's web fonts, served beside the script: none may fail
    failed = driver.execute_async_script(FONTS_JS)
    assert failed == [], f"{doc}: MathJax fonts failed to load: {failed}"

    # figures: scroll through the page so that nothing is left unloaded, then every image decoded
    height = driver.execute_script("return document.documentElement.scrollHeight")
    for y in range(0, height + 1, 800):
        driver.execute_script(f"window.scrollTo(0, {y})")
    driver.execute_script("window.scrollTo(0, 0)")
    _wait(driver, "return Array.from(document.images).every(i => i.complete)")
    images = driver.execute_script(IMAGES_JS)
    undecoded = [i["src"] for i in images if not (i["complete"] and i["w"] > 0 and i["h"] > 0)]
    assert not undecoded, f"{doc}: images not decoded (natural width 0): {undecoded}"
    want = expected_images(doc)
    assert len(images) >= want, f"{doc}: shows {len(images)} images, its notebook has {want} figures"

    # tables: each fits the text column at 1280 px, so no column hides behind a scroll bar
    wide = driver.execute_script(WIDE_TABLES_JS)
    assert not wide, f"{doc}: tables wider than the page's text column: {wide}"

    # tables show every cell in full: nothing cut off with "..." (pandas' display.max_colwidth)
    cut = driver.execute_script(TRUNCATED_JS)
    assert not cut, f"{doc}: table cells cut off: {cut}"

    # internal links, as the browser sees them (after any script ran), resolve to files and anchors
    hrefs = driver.execute_script(LINKS_JS)
    bad = broken_links(HTML / f"{doc}.html", hrefs)
    assert not bad, f"{doc}: broken internal links: {bad}"

    # screenshot of the whole page (capped), for a person to look at
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    full = min(int(driver.execute_script("return document.documentElement.scrollHeight")), 6000)
    driver.set_window_size(1280, max(full, 800))
    try:
        # let the resized page paint (two frames) before capturing, or regions come out blank
        driver.execute_async_script(PAINTED_JS)
        shot = SCREENSHOTS / f"{Path(doc).name}.png"
        assert driver.save_screenshot(str(shot)), f"{doc}: screenshot failed"
        assert shot.stat().st_size > 10_000, f"{doc}: screenshot is suspiciously small (blank page?)"
    finally:
        driver.set_window_size(1280, 1000)


FIRST_SCREEN = 900  # px from the top of the page, at a 1,400 px wide window
ANSWER_JS = """
const box = Array.from(document.querySelectorAll('.admonition')).find(a => a.innerText.includes('Result.'));
if (!box) { return null; }
const p = Array.from(box.querySelectorAll('p')).find(e => e.innerText.includes('Result.'));
const img = box.querySelector('img');
const bottom = e => e.getBoundingClientRect().bottom + window.scrollY;
return {text: p ? p.innerText : '', text_bottom: p ? bottom(p) : null,
        img_bottom: img ? bottom(img) : null, img_ok: img ? img.complete && img.naturalWidth > 0 : false,
        alt: img ? img.getAttribute('alt') : ''};
"""


@pytest.mark.parametrize("doc", ["book/intro", "book/index"])
def test_the_first_screen_holds_the_answer_and_the_forest_plot(doc, driver, base_url):
    driver.set_window_size(1400, 1000)
    try:
        driver.get(base_url + f"{doc}.html")
        assert _wait(driver, "return document.readyState === 'complete'"), f"{doc}: page did not finish loading"
        _wait(driver, "return Array.from(document.images).every(i => i.complete)")
        driver.execute_async_script(PAINTED_JS)
        got = driver.execute_script(ANSWER_JS)
        assert got, f"{doc}: no answer box (an admonition with 'Result.')"
        assert "rules out the claimed" in got["text"] and "remain possible" in got["text"], got["text"]
        assert got["text_bottom"] is not None and got["text_bottom"] <= FIRST_SCREEN, got
        assert got["img_ok"] and got["img_bottom"] is not None and got["img_bottom"] <= FIRST_SCREEN, got
        assert got["alt"].startswith("Forest plot") and "/" not in got["alt"], got["alt"]
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / f"{Path(doc).name}-first-screen.png"))
    finally:
        driver.set_window_size(1280, 1000)
