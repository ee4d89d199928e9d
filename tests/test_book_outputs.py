"""The default numerical path's notebook check, at no extra execution: the book build executes every
chapter once on this machine's default path (`make book`), and here the checked cells of those
executions (tagged `nbval-check-output`) are compared with the committed outputs, as nbval compares
them on the capped path (same sanitizing, same keys left out). So each notebook runs once per path in
`make test`, and both runs are checked."""
import json
import re
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import coalesce_streams, get_sanitize_patterns, transform_streams_for_comparison

ROOT = Path(__file__).resolve().parents[1]
BUILT = ROOT / "_build" / "jupyter_execute" / "notebooks"
CHECK_TAG = "nbval-check-output"
SKIP_KEYS = {"metadata", "traceback", "prompt_number", "output_type", "name", "execution_count",
             "application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg"}  # nbval's, without nbdime
PATTERNS = get_sanitize_patterns((ROOT / "tests" / "nbval_sanitize.cfg").read_text())
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CODE = sorted(p for p in (ROOT / "vml").rglob("*.py"))


def sanitize(value):
    if not isinstance(value, str):
        return value
    for regex, replace in PATTERNS:
        value = re.sub(regex, replace, value)
    return value


def comparable(outputs):
    """Outputs as nbval compares them: streams coalesced and keyed by name, MIME bundles flattened,
    volatile text sanitized, images and metadata left out; per key, the values in order."""
    flat = {}
    for out in transform_streams_for_comparison(coalesce_streams([nbformat.from_dict(o) for o in outputs])):
        for key, value in out.items():
            if key in SKIP_KEYS:
                continue
            items = value.items() if key == "data" else [(key, value)]
            for k, v in items:
                if k not in SKIP_KEYS:
                    flat.setdefault(k, []).append(sanitize(v))
    return flat


GLUE_TEXT = ("text/markdown", "text/plain")  # what a glue record is compared by: its Markdown, else its text


def split_glue(outputs):
    """A cell's outputs without its `glue` records, and those records as {name: (mime type, text)}: the
    Markdown of a glued Markdown object, else the text (a figure's text is only its size). (A book build
    moves glue records out of the cell into `<notebook>.glue.json`; a committed notebook keeps them.)"""
    rest, glued = [], {}
    for out in outputs:
        name = out.get("metadata", {}).get("scrapbook", {}).get("name")
        if name is None:
            rest.append(out)
        else:
            prefix = out["metadata"]["scrapbook"].get("mime_prefix", "")
            mime = next(m for m in GLUE_TEXT if prefix + m in out["data"])
            glued[name] = (mime, out["data"][prefix + mime])
    return rest, glued


def checked_cells(nb):
    return [(i, c) for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and CHECK_TAG in c.get("metadata", {}).get("tags", [])]


def test_comparable_outputs_leave_out_what_nbval_leaves_out_and_see_a_changed_number():
    table = {"output_type": "execute_result", "execution_count": 3, "metadata": {},
             "data": {"text/plain": "acc 83.20 (took 1.5 s)", "image/png": "AAAA"}}
    moved = {**table, "execution_count": 7, "data": {"text/plain": "acc 83.20 (took 2.9 s)", "image/png": "BBBB"}}
    assert comparable([table]) == comparable([moved]) == {"text/plain": ["acc 83.20 (took TIME)"]}
    assert comparable([table]) != comparable([{**table, "data": {"text/plain": "acc 83.59 (took 1.5 s)"}}])
    glue = {"output_type": "display_data", "metadata": {"scrapbook": {"name": "answer", "mime_prefix": "p/"}},
            "data": {"p/text/plain": "<IPython.core.display.Markdown object>", "p/text/markdown": "**Result.**"}}
    assert split_glue([glue, table]) == ([table], {"answer": ("text/markdown", "**Result.**")})
    streams = [{"output_type": "stream", "name": "stdout", "text": "a\n"},
               {"output_type": "stream", "name": "stdout", "text": "b\n"}]
    assert comparable(streams) == {"stdout": ["a\nb\n"]}


@pytest.mark.slow
@pytest.mark.parametrize("committed", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_book_builds_executions_match_the_checked_outputs(committed):
    built = BUILT / committed.name
    if not built.exists():
        pytest.skip(f"{built.relative_to(ROOT)} is not there: `make book` executes the chapters first")
    newest_input = max(p.stat().st_mtime for p in [committed, *CODE])
    if built.stat().st_mtime < newest_input:
        pytest.skip(f"{built.relative_to(ROOT)} is older than the notebook or the package: run `make book`")
    ours, theirs = nbformat.read(committed, as_version=4), nbformat.read(built, as_version=4)
    glue_file = built.with_suffix(".glue.json")
    built_glue = json.loads(glue_file.read_text()) if glue_file.exists() else {}
    cells = checked_cells(ours)
    assert cells, f"{committed.name} has no cell tagged {CHECK_TAG}"
    for i, cell in cells:
        run = theirs.cells[i]
        assert run.source == cell.source, f"cell {i} of the built copy has other code: rebuild the book"
        expected, glued = split_glue(cell.outputs)
        assert comparable(run.outputs) == comparable(expected), (
            f"{committed.name} cell {i}: the book build's output on this machine's default path differs "
            f"from the committed one")
        for name, (mime, text) in glued.items():
            assert name in built_glue, f"{committed.name} cell {i}: the book build glued no {name!r}"
            got = built_glue[name]["data"][mime]
            assert sanitize(got) == sanitize(text), f"{committed.name}: glued {name} is {got} here, {text} committed"
