"""The package's layers (ARCHITECTURE.md): every import of a vml module points to a lower layer or to
a sibling in its own layer, never up, and the imports have no cycle. Function-local imports count too."""
import ast
import graphlib
from pathlib import Path

import vml

LAYERS = [  # bottom first, as in ARCHITECTURE.md
    {"vml._io", "vml.host", "vml.device"},
    {"vml.loss", "vml.data", "vml.models", "vml.paper", "vml.stats", "vml.bf16"},
    {"vml.spec", "vml"},  # vml/__init__ re-exports the loss
    {"vml.train", "vml.store", "vml.merge"},
    {"vml.studies"},
    {"vml.runner", "vml.slurm"},
    {"vml.analysis", "vml.results"},
    {"vml.plots", "vml.plots_controller"},
    {"vml.book", "vml.cli", "vml.__main__"},
]
PACKAGES = ("vml.analysis", "vml.stats")  # a package's modules share its layer


def _layer(module: str) -> int:
    unit = next((p for p in PACKAGES if module == p or module.startswith(p + ".")), module)
    found = [i for i, layer in enumerate(LAYERS) if unit in layer]
    assert found, f"{module} is in no layer: add it to ARCHITECTURE.md and to LAYERS here"
    return found[0]


def _imports(path: Path, module: str) -> set[str]:
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
            out |= ({f"{base}.{node.module}"} if node.module else {f"{base}.{a.name}" for a in node.names})
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "vml":
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "vml"}
    return {m if _is_module(m) else m.rsplit(".", 1)[0] for m in out}  # `from . import __version__`: vml


def _is_module(name: str) -> bool:
    path = Path(vml.__file__).parent.parent / name.replace(".", "/")
    return path.with_suffix(".py").exists() or path.is_dir()


def _modules():
    root = Path(vml.__file__).parent
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        yield path, ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph():
    return {module: _imports(path, module) - {module} for path, module in _modules()}


def test_imports_point_down_and_never_in_a_circle():
    graph = _graph()
    upward = [f"{m} imports {t}" for m, targets in graph.items() for t in targets if _layer(t) > _layer(m)]
    assert upward == []
    order = list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a cycle
    assert order.index("vml._io") < order.index("vml.store") < order.index("vml.runner") < order.index("vml.cli")


def test_an_upward_import_is_caught(tmp_path):
    bad = tmp_path / "store.py"
    bad.write_text("from .runner import run\n\ndef f():\n    from . import plots\n")
    targets = _imports(bad, "vml.store")
    assert targets == {"vml.runner", "vml.plots"}
    assert all(_layer(t) > _layer("vml.store") for t in targets)
