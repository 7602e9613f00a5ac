"""DESIGN.md layers: ncbounds ← simulations ← figures; ncbounds imports no torch/matplotlib/seaborn."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "ncbounds": {"simulations", "figures"},
    "simulations": {"figures"},
}
# the command-line module is the project's face and may import the upper layers lazily
EXEMPT = {ROOT / "ncbounds" / "cli.py", ROOT / "ncbounds" / "cli"}


def imported_top_level(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_down_only(package):
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if any(path == e or e in path.parents for e in EXEMPT):
            continue
        bad = imported_top_level(path) & FORBIDDEN[package]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "layering violated:\n" + "\n".join(offenders)


def test_walker_sees_nested_and_from_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from figures.plots import x\n    import simulations.sweep as s\n")
    assert imported_top_level(f) == {"figures", "simulations"}


def test_importing_ncbounds_loads_no_heavy_library():
    modules = [
        p.stem for p in (ROOT / "ncbounds").glob("*.py") if p.stem not in ("__init__", "cli")
    ]
    code = (
        "import sys, importlib, ncbounds\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module('ncbounds.' + m)\n"
        "ncbounds.cdnv([[0.0], [1.0], [3.0]], [0, 0, 1])\n"
        "print(sorted(k for k in ('torch', 'matplotlib', 'seaborn', 'simulations', 'figures') "
        "if k in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
