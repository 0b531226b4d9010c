"""The package's layering rules (docs/architecture.md, module map), read from the source with ``ast``: argparse lives
in the command-line package alone, no module imports a name another module keeps private, and the command line
starts without the heavy libraries."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import syncammaster
from syncammaster.cli import COMMANDS

PACKAGE = Path(syncammaster.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = ["syncammaster", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    """Whether ``name`` (syncammaster.x.y) is a module or package of the package."""
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(text: str, own: str, is_package: bool = False) -> list[str]:
    """Where the source ``text`` of module ``own`` uses a private name of another syncammaster module:
    ``from m import _x``, or ``m._x`` on a module bound by an import."""
    found, modules = [], set()
    package = own.split(".") if is_package else own.split(".")[:-1]
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            source = ".".join(base + ([node.module] if node.module else []))
            if not source.startswith("syncammaster"):
                continue
            for alias in node.names:
                if is_private(alias.name) and source != own:
                    found.append(f"{own}:{node.lineno} imports {source}.{alias.name}")
                if is_module(f"{source}.{alias.name}"):  # `from .. import app`: a module bound to a name
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            modules.update(alias.asname or alias.name for alias in node.names if alias.name.startswith("syncammaster"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr) and ast.unparse(node.value) in modules:
            found.append(f"{own}:{node.lineno} uses {ast.unparse(node.value)}.{node.attr}")
    return found


def test_the_private_name_check_sees_both_ways_of_using_one():
    """The check can fail: each way of reaching into another module is caught, a module's own names are not."""
    text = ("from ..app import _send_rig_plot\nfrom .. import app\nimport syncammaster.app as application\n"
            "app._send_rig_plot\napplication._send_rig_plot\nfrom .index import DatasetError\n")
    assert len(private_uses(text, "syncammaster.data.probe")) == 3
    assert private_uses("from .app import _send_rig_plot\n", "syncammaster.app") == []


def imports_argparse(text: str) -> bool:
    for node in ast.walk(ast.parse(text)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and not node.level else [])
        if any(name == "argparse" or name.startswith("argparse.") for name in names):
            return True
    return False


def test_argparse_only_in_the_command_line_package():
    assert imports_argparse("def f():\n    from argparse import ArgumentTypeError\n")  # the check can fail
    users = [str(path.relative_to(PACKAGE)) for path in SOURCES
             if path.relative_to(PACKAGE).parts[0] != "cli" and imports_argparse(path.read_text(encoding="utf-8"))]
    assert users == []
    assert imports_argparse((PACKAGE / "cli" / "__init__.py").read_text(encoding="utf-8"))


def test_no_module_imports_another_modules_private_name():
    found = [line for path in SOURCES
             for line in private_uses(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")]
    assert found == []


def imported_modules(text: str, own: str, is_package: bool = False) -> set[str]:
    """The package's modules that the source ``text`` of module ``own`` imports, anywhere in it (inside functions
    and under ``TYPE_CHECKING`` too): ``from m import x`` counts as m, or as m.x where that is a module."""
    found = set()
    package = own.split(".") if is_package else own.split(".")[:-1]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            source = ".".join(base + ([node.module] if node.module else []))
            if source.startswith("syncammaster"):
                found.update(f"{source}.{a.name}" if is_module(f"{source}.{a.name}") else source for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("syncammaster."))
    return found - {own}


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The circles of an import graph: its strongly connected parts of more than one module (Tarjan)."""
    order, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(node: str) -> None:
        order[node] = low[node] = len(order)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in order:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], order[target])
        if low[node] == order[node]:
            part = []
            while not part or part[-1] != node:
                part.append(stack.pop())
                on_stack.discard(part[-1])
            if len(part) > 1:
                circles.append(sorted(part))

    for node in sorted(graph):
        if node not in order:
            visit(node)
    return circles


def test_the_circle_check_sees_a_circle_through_a_function_level_import():
    text = {"syncammaster.cameras": "from .camera_plot import plot_rig\n",
            "syncammaster.camera_plot": "def f():\n    from .cameras import CameraRig\n"}
    graph = {name: imported_modules(source, name) for name, source in text.items()}
    assert import_circles(graph) == [["syncammaster.camera_plot", "syncammaster.cameras"]]


def test_no_import_circle_between_modules():
    graph = {module_name(path): imported_modules(path.read_text(encoding="utf-8"), module_name(path),
                                                 path.name == "__init__.py") for path in SOURCES}
    assert import_circles(graph) == []


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_is_a_module_with_flags_and_a_run(name):
    module = importlib.import_module(f"syncammaster.cli.{name.replace('-', '_')}")
    assert callable(module.add_arguments) and callable(module.run)


def test_importing_the_command_line_imports_no_heavy_library():
    code = (
        "import sys\n"
        "import syncammaster.cli\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'numpy') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("module", ["syncammaster", "syncammaster.cli"])
def test_python_dash_m_runs_the_command(module):
    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "usage: syncammaster" in result.stdout
    assert all(name in result.stdout for name in COMMANDS)
