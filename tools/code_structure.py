"""Structure figures of the dp_ros package (the README's development section; test/test_code_structure.py).

    python tools/code_structure.py        # prints the figures

- import cycles between dp_ros modules, counting imports made inside functions;
- functions longer than MAX_FUNCTION_LINES;
- defaults stated twice: a literal default (other than None) of a dataclass field or function parameter that
  has the name of a node parameter (its default is declared in dp_ros/node_params), unless listed in
  DIFFERENT_MEANING with the reason it is another setting of the same name.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dp_ros"
MAX_FUNCTION_LINES = 60

# (file relative to dp_ros/, name) -> why its default is not the node parameter's
DIFFERENT_MEANING = {
    ("robot_interface.py", "trajectory_mode"): "the robot interface's own setting; the policy parameter of "
                                               "that name overrides it, empty = the robot interface's",
    ("demo/pipeline.py", "robot_config"): "the demo's option (empty = dp_ros's robot), handed to every node",
    ("demo/pipeline.py", "seed"): "the demo's seed of recording and training, not a node's",
    ("cli/bench_samplers.py", "seed"): "the benchmark's seed of its stream of frames, not a node's",
    ("training/configuration_training.py", "repo_id"): "the training YAML's dataset label",
    ("training/configuration_training.py", "output_dir"): "the training YAML's; train_node's empty = as it says",
    ("training/configuration_training.py", "resume"): "the training YAML's; train_node's false = as it says",
    ("training/configuration_training.py", "steps"): "the training YAML's; train_node's 0 = as it says",
    ("training/configuration_training.py", "seed"): "the training YAML's training seed",
    ("training/configuration_distillation.py", "teacher"): "the training YAML's distillation section; train_node's "
                                                           "empty = as it says",
    ("training/configuration_distillation.py", "output_dir"): "set by dp_ros from the run, not by the user",
    ("training/configuration_distillation.py", "resume"): "set by dp_ros from the run, not by the user",
    ("training/evaluation.py", "repo_id"): "a label for a dataset read for evaluation",
    ("data/bags/conversion_options.py", "on_stale"): "bag2lerobot's: split or fail (the recorder's: split or "
                                                     "discard a live recording)",
    ("sim/expert.py", "config"): "an ExpertConfig() whose fields take the declaration's defaults",
    ("sim/task.py", "config"): "a TaskConfig() whose fields take the declaration's defaults",
}


def modules() -> dict[str, Path]:
    """dp_ros module name -> file."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imported(node: ast.AST, module: str, is_package: bool, known: dict[str, Path]) -> set[str]:
    """The dp_ros modules an import statement imports (a from-import of a module names that module)."""
    targets: set[str] = set()
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[:len(package) - node.level + 1]
            base = ".".join(package + ([node.module] if node.module else []))
        names = [f"{base}.{alias.name}" for alias in node.names] + [base]
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            targets.add(name)
    return targets


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph = {}
    for name, path in known.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= _imported(node, name, path.name == "__init__.py", known)
        graph[name] = edges - {name}
    return graph


def import_cycles() -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    graph, index, low, stack, on_stack, groups = import_graph(), {}, {}, [], set(), []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return sorted(groups)


def long_functions(limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, str, int]]:
    """(file, function, lines) of every function in dp_ros/ longer than ``limit`` lines."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found.append((str(path.relative_to(PACKAGE)), node.name, lines))
    return found


def _literal(node: ast.AST | None) -> bool:
    if node is None or (isinstance(node, ast.Constant) and node.value is None):
        return False
    if isinstance(node, ast.UnaryOp):
        return _literal(node.operand)
    if isinstance(node, ast.Call):  # float("inf"), Field("chunk", ...), ExpertConfig()
        return getattr(node.func, "id", "") != "field"
    return isinstance(node, (ast.Constant, ast.Tuple, ast.List))


def _defaults(tree: ast.AST):
    """(name, default node, line) of every function parameter and dataclass-like class field."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args.posonlyargs + node.args.args
            yield from ((a.arg, d, node.lineno) for a, d in zip(arguments[len(arguments) - len(node.args.defaults):],
                                                                node.args.defaults))
            yield from ((a.arg, d, node.lineno) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults))
        elif isinstance(node, ast.ClassDef):
            yield from ((s.target.id, s.value, s.lineno) for s in node.body
                        if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name))


def defaults_stated_twice() -> list[tuple[str, int, str, str]]:
    """(file, line, name, default) of each literal default of a node parameter's name outside node_params."""
    sys.path.insert(0, str(ROOT))
    from dp_ros.node_params.config_files import NODES

    names = {param.name for declaration in NODES.values() for param in declaration}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = str(path.relative_to(PACKAGE))
        if where.startswith("node_params/"):
            continue
        for name, default, line in _defaults(ast.parse(path.read_text())):
            if name in names and _literal(default) and (where, name) not in DIFFERENT_MEANING:
                found.append((where, line, name, ast.unparse(default)))
    return found


def unmatched_exceptions() -> list[tuple[str, str]]:
    """DIFFERENT_MEANING entries that no longer name a literal default (so the list cannot hide a new one)."""
    unmatched = []
    for where, name in DIFFERENT_MEANING:
        path = PACKAGE / where
        found = path.is_file() and any(n == name and _literal(default)
                                       for n, default, _ in _defaults(ast.parse(path.read_text())))
        if not found:
            unmatched.append((where, name))
    return unmatched


def main() -> int:
    cycles, long, twice = import_cycles(), long_functions(), defaults_stated_twice()
    print(f"import cycles (function-level imports counted): {len(cycles)}")
    for group in cycles:
        print("  " + " <-> ".join(group))
    print(f"functions over {MAX_FUNCTION_LINES} lines: {len(long)}")
    for where, name, lines in long:
        print(f"  {where}: {name} ({lines} lines)")
    print(f"defaults stated twice: {len(twice)}")
    for where, line, name, default in twice:
        print(f"  {where}:{line}: {name} = {default}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
