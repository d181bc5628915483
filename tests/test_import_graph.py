"""The package's modules import each other without cycles, and recipe checks stay free of jax.

The graph counts every ``import`` statement of a ``dlcli`` module, at module
level and inside functions alike (a function-level import is a dependency
that only waits for its first call); imports under ``if TYPE_CHECKING:``
are left out, since they never run.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import dlcli

PACKAGE = Path(dlcli.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every dlcli module named by an import in ``tree`` (``from a import b`` names a.b when that is a module)."""
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for module, path in files.items():
        names = imported_names(ast.parse(path.read_text()), module, path.name == "__init__.py")
        graph[module] = {name for name in names if name in files and name != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a list of modules, or None when it is acyclic."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for child in sorted(graph[node]):
            if state.get(child) == 1:
                return path[path.index(child):] + [child]
            if child not in state and (cycle := visit(child)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_sees_the_imports_it_must_hold():
    graph = import_graph()
    assert "dlcli.registry" in graph["dlcli.models"]
    assert "dlcli.train.step" in graph["dlcli.tasks.base"]  # a function-level import counts
    assert "dlcli.tasks" not in graph["dlcli.train.step"]  # a TYPE_CHECKING import does not


def test_a_cycle_is_found():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def test_dlcli_modules_import_each_other_without_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_checking_a_recipe_imports_no_jax():
    """Reading a recipe and the task its model fixes takes no jax, flax or model import."""
    code = ("import sys\n"
            "from dlcli.recipe import read_toml, validate_recipe\n"
            "from dlcli.recipe_files import bundled_dir\n"
            "recipe = validate_recipe(read_toml(bundled_dir() / 'digits-autoencoder.toml', 'r'), 'r')\n"
            "assert recipe.task == 'reconstruction', recipe.task\n"
            "from dlcli.models import MODELS\n"
            "from dlcli.tasks import TASKS\n"
            "MODELS.check_name('mlp'); TASKS.check_name('regression')\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'flax', 'optax'))\n"
            "assert not loaded and 'dlcli.models.mlp' not in sys.modules, loaded\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_commands_that_read_data_never_import_pandas(tmp_path):
    """pyarrow's dataset module would import pandas (0.2 s) to recognise pandas objects dlcli never holds."""
    command = [sys.executable, "-X", "importtime", "-m", "dlcli", "compare", "mlp-xor", "--vary",
               "optimizer.learning_rate=0.1,0.2", "--seeds", "1", "--set", "train.epochs=2", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.split("|")[2].strip(): int(line.split("|")[1]) for line in done.stderr.splitlines()
                if line.startswith("import time:") and line.split("|")[1].strip().isdigit()}
    assert "jax" in imported and imported.get("pandas", 0) < 1000  # microseconds: a refused lookup, not an import


def test_listing_and_printing_bundled_recipes_loads_no_recipe_schema():
    """`dlcli recipes` (and `dlcli recipes NAME`) read the recipe files only: the schema module stays unloaded."""
    code = ("import sys\n"
            "from typer.testing import CliRunner\n"
            "from dlcli.cli import app\n"
            "listed = CliRunner().invoke(app, ['recipes'])\n"
            "printed = CliRunner().invoke(app, ['recipes', 'mlp-xor'])\n"
            "assert listed.exit_code == printed.exit_code == 0, (listed.output, printed.output)\n"
            "assert 'mlp-xor' in listed.output and '[model]' in printed.output\n"
            "assert 'dlcli.recipe' not in sys.modules and 'jax' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
