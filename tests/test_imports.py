"""The package's import graph, read from its own source: downhill from the command line to the
core, with no cycle; and the light imports promised to users of the protectors."""
import ast
import os
import subprocess
import sys

import pytest

import torchreid_pixelfade

PACKAGE = "torchreid_pixelfade"
ROOT = os.path.dirname(torchreid_pixelfade.__file__)


def module_files() -> dict[str, str]:
    modules = {}
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                modules[".".join([PACKAGE, *parts])] = path
    return modules


def imports_of(module: str, path: str, modules: dict) -> set[str]:
    """Modules of the package that ``module`` imports anywhere (function bodies included)."""
    is_package = path.endswith("__init__.py")
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = module if is_package else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = (f"{base}.{node.module}" if node.module else base) if node.level else \
                node.module
            for alias in node.names:  # `from . import config` names a module
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules
                          else target)
    return {name for name in found if name in modules and name != module}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_is_read(graph):
    assert f"{PACKAGE}.store" in graph[f"{PACKAGE}.workflows"]
    assert f"{PACKAGE}.config" in graph[f"{PACKAGE}.experiments.demo"]  # `from .. import config`
    assert f"{PACKAGE}.protect" in graph[f"{PACKAGE}.store.writer"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle(graph):
    assert find_cycle(graph) is None


def test_nothing_imports_the_command_line(graph):
    importers = {name for name, targets in graph.items() if f"{PACKAGE}.cli" in targets}
    assert importers <= {f"{PACKAGE}.__main__"}


@pytest.mark.parametrize("low, high", [
    ("protect", ("store", "evaluation", "engines", "config", "workflows", "experiments")),
    ("store", ("evaluation", "engines", "config", "workflows", "experiments")),
    ("metrics", ("protect", "store", "evaluation", "engines", "config", "workflows")),
    ("evaluation", ("engines", "config", "workflows", "experiments")),
    ("engines", ("config", "workflows", "experiments")),
    ("workflows", ("experiments",)),
])
def test_imports_run_downhill(graph, low, high):
    """Lower floors never import higher ones; below ``workflows`` nothing reads a config."""
    for name, targets in graph.items():
        if name == f"{PACKAGE}.{low}" or name.startswith(f"{PACKAGE}.{low}."):
            uphill = {t for t in targets for h in high
                      if t == f"{PACKAGE}.{h}" or t.startswith(f"{PACKAGE}.{h}.")}
            assert not uphill, f"{name} imports {sorted(uphill)}"


HEAVY = ("torchreid", "skimage", "scipy", "torchreid_pixelfade.data.synthetic")


def loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join("
                          "sys.modules))"], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("code", ["import torchreid_pixelfade.protect",
                                  "from torchreid_pixelfade import PixelFade, AuthorizedModel",
                                  "from torchreid_pixelfade.cli import build_parser; "
                                  "build_parser().format_help()"])
def test_light_imports(code):
    heavy = {m for m in loaded_after(code) if m.split(".")[0] in HEAVY or m.startswith(HEAVY[-1])}
    assert not heavy, sorted(heavy)[:5]


def test_python_dash_m_runs_the_command_line():
    result = subprocess.run([sys.executable, "-m", PACKAGE, "--help"], capture_output=True,
                            text=True)
    assert result.returncode == 0 and "protect" in result.stdout


def test_lazy_names_resolve():
    from torchreid_pixelfade import PixelFadeTransform, ProtectedImageDataset, enable_pixelfade

    assert callable(enable_pixelfade) and PixelFadeTransform.__name__ == "PixelFadeTransform"
    assert ProtectedImageDataset.__name__ == "ProtectedImageDataset"
    with pytest.raises(AttributeError):
        torchreid_pixelfade.not_a_name  # noqa: B018


def test_no_engine_imports_another(graph):
    engines = {name.split(".")[2] for name in graph if name.startswith(f"{PACKAGE}.engines.")}
    for name, targets in graph.items():
        if name.startswith(f"{PACKAGE}.engines."):
            wing = name.split(".")[2]
            others = {t for t in targets for other in engines - {wing}
                      if t.startswith(f"{PACKAGE}.engines.{other}")}
            assert not others, f"{name} imports {sorted(others)}"
