"""The package layout keeps the stages apart: declare and plan without torch, public namespaces
that re-export, and a small top level."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tnlayers

PACKAGE = Path(tnlayers.__file__).parent
# Modules that must work without torch: all of _core, and the circuit declarations and plan.
TORCH_FREE = sorted(
    [
        *(PACKAGE / "_core").glob("*.py"),
        PACKAGE / "_circuits" / "declare.py",
        PACKAGE / "_circuits" / "givens_plan.py",
    ]
)


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every imported module of ``path`` (absolute name, or relative with its level)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, 0) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.module or "", node.level))
    return found


@pytest.mark.parametrize("path", TORCH_FREE, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_declare_and_plan_modules_never_import_torch(path):
    for module, level in _imports(path):
        assert level or module.split(".")[0] != "torch", f"{path.name} imports {module}"
        if level:  # relative: only other torch-free modules
            if level == 1:
                target = path.parent / f"{module.split('.')[0]}.py"
            else:
                target = PACKAGE / Path(*module.split(".")).with_suffix(".py")
            assert target in TORCH_FREE, f"{path.name} imports {module} (level {level})"


def test_core_imports_only_core():
    for path in (PACKAGE / "_core").glob("*.py"):
        for module, level in _imports(path):
            assert level in (0, 1), f"{path.name} reaches outside _core: {module}"


def test_top_level_is_small_and_explicit():
    names = [n for n in tnlayers.__all__ if not n.startswith("_")]
    # networks and their builders, layers, cost, fit/compress/restore, summary, param_groups,
    # errors; restore and recalibrate_batchnorm are names users' scripts rely on (issue 14)
    assert len(names) <= 53
    for name in tnlayers.__all__:
        assert hasattr(tnlayers, name)
    for namespace in (
        tnlayers.circuits,
        tnlayers.compression,
        tnlayers.analysis,
        tnlayers.contraction,
    ):
        for name in namespace.__all__:
            assert hasattr(namespace, name)
            assert not name.startswith("_")


def test_no_private_name_crosses_a_module_boundary():
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                private = [
                    a.name
                    for a in node.names
                    if a.name.startswith("_") and not a.name.endswith("__")  # __version__
                ]
                assert not private, f"{path.relative_to(PACKAGE)} imports {private}"


def test_import_and_the_command_line_do_not_wait_for_torch():
    # Declaring, costing and drawing networks is torch-free, so `import tnlayers`,
    # `tnlayers --help` and `tnlayers cost` never import it; layers load it on first use.
    import subprocess
    import sys

    probe = (
        "import sys, tnlayers; from tnlayers.cli import main\n"
        "net = tnlayers.mpo(784, 256, 4); report = tnlayers.cost(net, 64)\n"
        "main(['cost', 'fc2-mpo1-d2'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "layer = tnlayers.TNLinear(net)\n"
        "assert 'torch' in sys.modules and type(layer).__module__ == 'tnlayers._layers.linear'\n"
        "assert tnlayers.TNLinear is layer.__class__\n"
        "from tnlayers import compress, MPOLinear\n"
        "print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")


def test_every_lazy_name_resolves_to_what_type_checkers_see():
    import importlib

    for name, (module, attribute) in tnlayers._LAZY.items():
        loaded = importlib.import_module(module, "tnlayers")
        expected = loaded if attribute is None else getattr(loaded, attribute)
        assert getattr(tnlayers, name) is expected, name
    assert set(tnlayers._LAZY) <= set(tnlayers.__all__)


def test_the_lazy_table_and_the_type_checking_imports_list_the_same_names():
    # tnlayers/__init__.py names each lazy object twice: in _LAZY (what runs) and under
    # TYPE_CHECKING (what type checkers and the API docs see). They must not drift apart.
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
    )
    seen: dict[str, tuple[str, str | None]] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1, ast.dump(node)
        for alias in node.names:
            assert alias.asname == alias.name, "re-export as the same name"
            if node.module is None:  # from . import analysis as analysis: a subpackage
                seen[alias.name] = (f".{alias.name}", None)
            else:
                seen[alias.name] = (f".{node.module}", alias.name)
    assert seen == tnlayers._LAZY
