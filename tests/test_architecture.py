"""The package's structure (ARCHITECTURE.md): layers that import one way, no import cycles,
no private names across modules, `__all__` in every module, short modules and scripts, no
`sys.path` edits, and one epoch loop."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import REPO

PKG = REPO / "pixelrnn_jax"
# a module may import from its own layer and the layers listed for it
LAYERS = {
    "core": set(), "data": set(), "plots": set(),
    "training": {"core", "data", "plots"},
    "sensor": {"core", "data", "plots", "training"},
    "paper": {"core", "data", "plots", "training", "sensor"},
    "cli": {"core", "data", "plots", "training", "sensor", "paper"},
}
MAX_MODULE_LINES, MAX_SCRIPT_LINES = 500, 120


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


MODULES = dict(_modules())


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _imports(module: str, path: Path):
    """(imported module, imported name or None) of every import of the package."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("pixelrnn_jax"):
                    yield a.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = ".".join(base[:len(base) - node.level + 1] + [node.module or ""])
            else:
                base = node.module or ""
            if not base.startswith("pixelrnn_jax"):
                continue
            for a in node.names:
                full = f"{base}.{a.name}"
                yield (full, None) if full in MODULES else (base, a.name)


def _edges():
    for module, path in MODULES.items():
        for target, name in _imports(module, path):
            yield module, target, name


def test_layers_import_downward_only():
    bad = []
    for module, target, _ in _edges():
        src, dst = _layer(module), _layer(target)
        if src is None or dst is None or src == dst:
            continue   # the package root re-exports the public surface
        if dst not in LAYERS[src]:
            bad.append(f"{module} imports {target}")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    graph = {m: set() for m in MODULES}
    for module, target, _ in _edges():
        dep = target if target in MODULES else target.rsplit(".", 1)[0]
        # a package's __init__ gathering its own submodules is not an edge back up
        if dep in MODULES and dep != module and not (
                MODULES[module].name == "__init__.py" and dep.startswith(module + ".")):
            graph[module].add(dep)
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for d in graph[m]:
            if state.get(d) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_no_private_name_crosses_a_module():
    bad = [f"{m} imports {n} from {t}" for m, t, n in _edges()
           if n and n.startswith("_") and not n.startswith("__")]
    for folder in ("experiments", "benchmarks", "tests"):
        for path in (REPO / folder).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                        "pixelrnn_jax"):
                    bad += [f"{path.name} imports {a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, "\n".join(bad)


def test_every_module_declares_its_public_names():
    missing = [str(p.relative_to(REPO)) for m, p in MODULES.items()
               if "__all__" not in p.read_text()]
    assert not missing, missing
    for m, p in MODULES.items():   # and every listed name exists
        tree = ast.parse(p.read_text())
        defined = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                   if isinstance(t, ast.Name)}
        defined |= {n.name for n in tree.body
                    if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))}
        defined |= {(a.asname or a.name).split(".")[0] for n in tree.body
                    if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
        defined |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign)}
        listed = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                      and any(getattr(t, "id", "") == "__all__" for t in n.targets))
        assert set(listed) <= defined, (m, sorted(set(listed) - defined))


def test_modules_and_scripts_are_short():
    long = [f"{p.relative_to(REPO)}: {n}" for p in PKG.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    long += [f"{p.relative_to(REPO)}: {n}" for p in (REPO / "experiments").glob("*.py")
             if (n := len(p.read_text().splitlines())) > MAX_SCRIPT_LINES]
    assert not long, long


def test_scripts_do_not_edit_sys_path():
    edits = [str(p.relative_to(REPO)) for folder in ("experiments", "benchmarks")
             for p in (REPO / folder).glob("*.py")
             if re.search(r"sys\.path\.(insert|append)", p.read_text())]
    assert not edits, edits


def test_one_epoch_loop():
    loops = [f"{p.relative_to(REPO)}:{n.lineno}" for p in PKG.rglob("*.py")
             for n in ast.walk(ast.parse(p.read_text()))
             if isinstance(n, ast.For) and isinstance(n.target, ast.Name)
             and n.target.id in ("epoch", "ep", "e")]
    assert len(loops) == 1 and loops[0].startswith("pixelrnn_jax/training/loop.py"), loops
