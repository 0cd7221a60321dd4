"""The test suite's own house rules: a fixture is defined once (conftest.py's shared ones are not redefined by a
test module, which would shadow them and could change the environment of the tests that run after it)."""

import ast
import os

TESTING = os.path.dirname(os.path.abspath(__file__))


def fixtures(path):
    """Names of the functions decorated with pytest.fixture (with or without arguments) in `path`."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(target, ast.Attribute) and target.attr == "fixture":
                    names.add(node.name)
    return names


def test_no_test_module_redefines_a_conftest_fixture():
    shared = fixtures(os.path.join(TESTING, "conftest.py"))
    assert {"synthetic_model", "tiles_model"} <= shared
    redefined = [
        f"{name}:{fixture}"
        for name in sorted(os.listdir(TESTING))
        if name.startswith("test_") and name.endswith(".py")
        for fixture in sorted(fixtures(os.path.join(TESTING, name)) & shared)
    ]
    assert redefined == []
