"""Write the configuration `make book` builds with: `_config.yml`, plus the launch buttons (Colab, Binder)
when the book's GitHub repository is known.

Jupyter Book builds a launch link from `repository.url`; with none it points the link at its own default
repository, so the committed `_config.yml` names no repository and switches the buttons off. This script
finds the address where it is a fact of the build, never a guess, in this order:

1. `VML_REPOSITORY_URL` (and `VML_REPOSITORY_BRANCH`), set by whoever builds;
2. GitHub Actions' `GITHUB_SERVER_URL`/`GITHUB_REPOSITORY` (and `GITHUB_REF_NAME`): the repository the
   publishing workflow runs in;
3. the clone's `origin` remote, when it is on github.com (and the branch checked out).

It writes `_build/_config.yml` and prints one line saying whether the buttons are on, and for which
repository. A `VML_REPOSITORY_URL` that is not a GitHub repository address is refused in one line, exit 2.

    python scripts/book_config.py [--out _build/_config.yml]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COLAB, BINDER = "https://colab.research.google.com", "https://mybinder.org"
_GITHUB = re.compile(r"^(?:https://github\.com/|git@github\.com:|ssh://git@github\.com/)"
                     r"(?P<owner>[\w.-]+)/(?P<name>[\w.-]+?)(?:\.git)?/?$")


def github_url(address: str) -> str | None:
    """`https://github.com/owner/name` for a GitHub clone address (https or ssh, with or without `.git`);
    None for any other address."""
    m = _GITHUB.match(address.strip())
    return f"https://github.com/{m['owner']}/{m['name']}" if m else None


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def repository(env=os.environ, git=_git) -> tuple[str | None, str, str]:
    """(url, branch, where it came from); url is None where no GitHub repository is known. Raises
    ValueError for a `VML_REPOSITORY_URL` that is not a GitHub repository address."""
    if env.get("VML_REPOSITORY_URL"):
        url = github_url(env["VML_REPOSITORY_URL"])
        if url is None:
            raise ValueError(f"VML_REPOSITORY_URL={env['VML_REPOSITORY_URL']!r} is not a GitHub repository "
                             "address; allowed: https://github.com/OWNER/NAME")
        return url, env.get("VML_REPOSITORY_BRANCH") or git("branch", "--show-current") or "main", "VML_REPOSITORY_URL"
    if env.get("GITHUB_REPOSITORY") and env.get("GITHUB_SERVER_URL") == "https://github.com":
        return (f"https://github.com/{env['GITHUB_REPOSITORY']}", env.get("GITHUB_REF_NAME") or "main",
                "GITHUB_REPOSITORY")
    url = github_url(git("remote", "get-url", "origin"))
    if url:
        return url, git("branch", "--show-current") or "main", "the origin remote"
    return None, "", ""


def book_config(base: dict, url: str | None, branch: str, moved_to: Path | None = None) -> dict:
    """`base` (the committed `_config.yml`) with the repository and both launch services set when `url`
    is given; unchanged otherwise. Jupyter Book resolves `sphinx.local_extensions` folders against the
    configuration file's folder: for a copy written to the folder `moved_to`, they are rewritten to
    point at the same folders of this repository."""
    config = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    local = (config.get("sphinx") or {}).get("local_extensions")
    if moved_to is not None and local:
        config["sphinx"] = {**config["sphinx"], "local_extensions": {
            name: os.path.relpath(ROOT / path, moved_to) + "/" for name, path in local.items()}}
    if url:
        config["repository"] = {"url": url, "branch": branch, "path_to_book": ""}
        config["launch_buttons"] = {**config.get("launch_buttons", {}), "colab_url": COLAB, "binderhub_url": BINDER}
        config["html"] = {**config.get("html", {}), "use_repository_button": True}
    return config


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "_build" / "_config.yml"))
    a = p.parse_args(argv)
    try:
        url, branch, source = repository()
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(a.out).resolve()
    config = book_config(yaml.safe_load((ROOT / "_config.yml").read_text()), url, branch, moved_to=out.parent)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text("# Written by scripts/book_config.py from _config.yml: edit that file, not this one.\n"
                   + yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    tmp.replace(out)
    print(f"launch buttons: on, for {url} ({branch}; from {source})" if url else
          "launch buttons: off (no GitHub repository known: set VML_REPOSITORY_URL=https://github.com/OWNER/NAME)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
