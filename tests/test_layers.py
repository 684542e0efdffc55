"""The package's layers: a lower layer never imports a higher one (read from the source, not run).

Layers, lowest first (DESIGN.md): errors/exports, units, equations, models/codegen, simulate, data,
plots, fitting, inference/analysis, reduction, workflow, cli. A module may import its own
package and anything strictly lower; ``neurofit/__init__.py`` and ``__main__.py`` sit above all.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "neurofit"
RANK = {"errors": 0, "exports": 0, "units": 1, "equations": 2, "models": 3, "codegen": 3, "simulate": 4,
        "data": 5, "plots": 6, "fitting": 7, "inference": 8, "analysis": 8, "reduction": 9, "workflow": 10,
        "cli": 11}
TOP_LEVEL_LIMIT = 10


def layer_of(module: str) -> str:
    """'neurofit.fitting.metrics' -> 'fitting'; 'neurofit.units' -> 'units'."""
    return module.split(".")[1]


def module_name(path: Path, root: Path = PACKAGE) -> str:
    """Dotted module name of ``path`` inside the package folder ``root``."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = PACKAGE) -> list:
    """Every neurofit module ``path`` imports (top-level and inside functions), as absolute names."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    tree = ast.parse(path.read_text(), str(path))
    for node in sorted(ast.walk(tree), key=lambda n: getattr(n, 'lineno', 0)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "neurofit":  # from .. import models: the names are modules
                found += [f"neurofit.{alias.name}" for alias in node.names]
            elif target.startswith("neurofit."):
                found.append(target)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("neurofit.")]
    return found


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE or p.stem not in ("__init__", "__main__"))


def test_every_layer_is_ranked():
    layers = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in modules()}
    assert layers <= set(RANK), f"unranked top-level modules or packages: {sorted(layers - set(RANK))}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_higher_layer(path):
    own = layer_of(module_name(path)) if "." in module_name(path) else None
    upward = []
    for target in imported_modules(path):
        layer = layer_of(target)
        if layer == own or layer not in RANK:
            continue
        if RANK[layer] >= RANK[own]:
            upward.append(f"{target} ({layer}, rank {RANK[layer]})")
    assert not upward, f"{module_name(path)} (layer {own}, rank {RANK[own]}) imports upward: {upward}"


def test_top_level_stays_small():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= TOP_LEVEL_LIMIT, top


def test_the_checker_sees_an_upward_import(tmp_path):
    """A planted upward import (relative, inside a function, or absolute) is found and resolved."""
    planted = tmp_path / "neurofit" / "codegen" / "kernel.py"
    planted.parent.mkdir(parents=True)
    planted.write_text("from ..units import UnitError\n"
                       "def f():\n    from ..fitting import metrics\n"
                       "import neurofit.cli.main\n")
    found = imported_modules(planted, root=tmp_path / "neurofit")
    assert found == ["neurofit.units", "neurofit.fitting", "neurofit.cli.main"]
    assert [RANK[layer_of(m)] > RANK["codegen"] for m in found] == [False, True, True]
