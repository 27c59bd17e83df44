"""dp_ros.data's layout: no import cycles (imports inside functions count), the two flows apart
(``datasets`` never imports ``bags``), and no function over 60 lines."""
from __future__ import annotations

import ast
from pathlib import Path

from ros_testing import REPO_ROOT

DATA = Path(REPO_ROOT) / "dp_ros" / "data"
OWNED_CLI = ["bag2lerobot.py", "lerobot2bag.py", "check_dataset.py", "record.py"]


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every dp_ros module ``path`` imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dp_ros"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("dp_ros"))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in DATA.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack + [target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function():
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b", "a"]]


def test_no_import_cycles_in_dp_ros_data():
    graph = _graph()
    assert "dp_ros.data.bags.bag_reader" in graph and "dp_ros.data.datasets.dataset_writer" in graph
    assert _cycles(graph) == []


def test_datasets_never_import_bags():
    wrong = {name: sorted(m for m in targets if m.startswith("dp_ros.data.bags"))
             for name, targets in _graph().items() if name.startswith("dp_ros.data.datasets")}
    assert not {k: v for k, v in wrong.items() if v}


def test_no_function_over_60_lines():
    paths = list(DATA.rglob("*.py")) + [Path(REPO_ROOT) / "dp_ros" / "cli" / name for name in OWNED_CLI]
    long = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                long.append(f"{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []
