"""The launch buttons (Colab, Binder): `scripts/book_config.py` finds the book's GitHub repository where
it is a fact of the build (VML_REPOSITORY_URL, GitHub Actions, an origin on github.com) and never
guesses one; a book built with its configuration renders both buttons, pointing at that repository."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import book_config as bc  # noqa: E402


@pytest.mark.parametrize("address", ["https://github.com/someone/vml-book", "https://github.com/someone/vml-book.git",
                                     "git@github.com:someone/vml-book.git", "ssh://git@github.com/someone/vml-book/"])
def test_github_addresses_give_the_repository_page(address):
    assert bc.github_url(address) == "https://github.com/someone/vml-book"


@pytest.mark.parametrize("address", ["", "/srv/git/vml-book", "https://gitlab.com/someone/vml-book",
                                     "https://github.com/someone", "https://github.com.evil.org/a/b"])
def test_other_addresses_give_no_repository(address):
    assert bc.github_url(address) is None


def _git(origin="", branch="work"):
    return lambda *args: {"remote": origin, "branch": branch}[args[0]]


def test_the_builders_variable_comes_first_then_github_actions_then_origin():
    actions = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "ci/book", "GITHUB_REF_NAME": "main"}
    origin = _git("git@github.com:clone/book.git")
    assert bc.repository({"VML_REPOSITORY_URL": "https://github.com/me/book", **actions}, origin)[:2] == \
        ("https://github.com/me/book", "work")
    assert bc.repository(actions, origin)[:2] == ("https://github.com/ci/book", "main")
    assert bc.repository({}, origin)[:2] == ("https://github.com/clone/book", "work")
    assert bc.repository({}, _git("/srv/git/book"))[0] is None  # a local clone: no buttons, no guess


def test_a_bad_repository_variable_is_refused_in_one_line():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "book_config.py"), "--out", "/dev/null"],
                       env={"PATH": "/usr/bin:/bin", "VML_REPOSITORY_URL": "https://gitlab.com/a/b"},
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "error: VML_REPOSITORY_URL='https://gitlab.com/a/b' is not a GitHub repository address; "
        "allowed: https://github.com/OWNER/NAME"]


def test_without_a_repository_the_committed_configuration_is_unchanged():
    base = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert bc.book_config(base, None, "") == base
    assert not base.get("repository") and not base["launch_buttons"]["colab_url"]


def test_the_written_configuration_finds_the_local_extensions_from_its_own_folder(tmp_path, monkeypatch):
    """Jupyter Book resolves `local_extensions` against the configuration file's folder, not the book's:
    the copy in _build/ must still name book/_ext/ (the first CI build with it failed to import it)."""
    for var in ("VML_REPOSITORY_URL", "GITHUB_REPOSITORY", "GITHUB_SERVER_URL"):
        monkeypatch.delenv(var, raising=False)
    out = tmp_path / "deep" / "_config.yml"
    assert bc.main(["--out", str(out)]) == 0
    written = yaml.safe_load(out.read_text())["sphinx"]["local_extensions"]
    committed = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["local_extensions"]
    assert written.keys() == committed.keys()
    for name in committed:
        assert (out.parent / written[name]).resolve() == (ROOT / committed[name]).resolve()
        assert (out.parent / written[name] / f"{name}.py").is_file()


def _build_tiny_book(tmp_path: Path, url: str | None) -> str:
    """A one-notebook book built with this repository's `html` and `launch_buttons` settings."""
    real = yaml.safe_load((ROOT / "_config.yml").read_text())
    base = {"title": "t", "execute": {"execute_notebooks": "off"}, "only_build_toc_files": True,
            "html": real["html"], "launch_buttons": real["launch_buttons"]}
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(bc.book_config(base, url, "main")))
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n- file: notebooks/ch\n")
    (tmp_path / "intro.md").write_text("# Intro\n")
    (tmp_path / "notebooks").mkdir()
    nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# Chapter"]}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "notebooks" / "ch.ipynb").write_text(json.dumps(nb))
    jb = Path(sys.executable).with_name("jupyter-book")
    r = subprocess.run([str(jb), "build", str(tmp_path), "-W", "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return (tmp_path / "_build" / "html" / "notebooks" / "ch.html").read_text()


@pytest.mark.slow
def test_launch_buttons_render_and_open_the_books_repository(tmp_path):
    html = _build_tiny_book(tmp_path, "https://github.com/someone/vml-book")
    assert "https://colab.research.google.com/github/someone/vml-book/blob/main/notebooks/ch.ipynb" in html
    assert "https://mybinder.org/v2/gh/someone/vml-book/main?urlpath=" in html
    assert "notebooks/ch.ipynb" in html.split("https://mybinder.org/v2/gh/someone/vml-book/main?urlpath=")[1][:60]


@pytest.mark.slow
def test_without_a_repository_no_launch_button_renders(tmp_path):
    html = _build_tiny_book(tmp_path, None)
    assert "colab.research.google.com" not in html and "mybinder.org" not in html
