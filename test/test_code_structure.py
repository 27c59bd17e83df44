"""The structure goals of the README's development section, measured by tools/code_structure.py."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("code_structure", ROOT / "tools" / "code_structure.py")
code_structure = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(code_structure)



def test_no_import_cycles_counting_imports_inside_functions():
    assert code_structure.import_cycles() == []


def test_the_cycle_finder_sees_an_import_made_inside_a_function(tmp_path, monkeypatch):
    package = tmp_path / "dp_ros"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from dp_ros import b\n")
    (package / "b.py").write_text("def late():\n    from dp_ros.a import thing\n")
    monkeypatch.setattr(code_structure, "ROOT", tmp_path)
    monkeypatch.setattr(code_structure, "PACKAGE", package)
    assert code_structure.import_cycles() == [["dp_ros.a", "dp_ros.b"]]


def test_no_function_over_60_lines():
    long = code_structure.long_functions()
    assert not long, f"functions over {code_structure.MAX_FUNCTION_LINES} lines: {long}"


def test_no_default_is_stated_twice():
    """A setting's default is declared once, in dp_ros/node_params; code that carries the setting takes it from
    there (or has no default)."""
    assert code_structure.defaults_stated_twice() == []


def test_every_exception_to_the_defaults_rule_still_names_a_default():
    """An exception left behind after its default went away could hide a new restatement of that name."""
    assert code_structure.unmatched_exceptions() == []


@pytest.mark.parametrize("source,found", [
    ("class Settings:\n    transition: str = 'blend'\n", True),
    ("def f(timing_margin=0.02): pass\n", True),
    ("def f(*, timing_margin=0.02): pass\n", True),
    ("def f(timing_margin=None): pass\n", False),
    ("class Settings:\n    transition: str = POLICY['transition'].default\n", False),
])
def test_a_restated_default_is_found(tmp_path, monkeypatch, source, found):
    package = tmp_path / "dp_ros"
    package.mkdir()
    (package / "settings.py").write_text(source)
    monkeypatch.setattr(code_structure, "PACKAGE", package)
    assert bool(code_structure.defaults_stated_twice()) == found


def test_every_test_that_starts_nodes_over_dds_is_marked():
    """Markers are declared by the tests (pytestmark or a decorator), so a renamed module keeps them."""
    for path in sorted((ROOT / "test").glob("test_*.py")):
        text = path.read_text()
        if "python_process(" in text and "ros_node(" in text:
            assert "pytest.mark.dds" in text, f"{path.name} starts nodes over DDS but is not marked dds"
