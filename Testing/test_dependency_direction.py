"""Dependencies point one way: front doors -> pipeline -> engines/io; the evaluation depends on the core, never the
reverse; nothing installed imports Testing/. Every file is parsed (ast), nothing is imported."""

import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORE = os.path.join(REPO, "CTADeface", "CTADefaceLib")
EVAL = os.path.join(REPO, "CTADefaceEval", "CTADefaceEvalLib")
TESTING_MODULES = {os.path.splitext(n)[0] for n in os.listdir(os.path.join(REPO, "Testing")) if n.endswith(".py")} | {
    "Testing",
    "conftest",
    "benchmarks",
    "slicer_env",
}


def python_files(folder):
    for dirpath, _, filenames in os.walk(folder):
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield os.path.join(dirpath, name)


def package_of(path):
    """Dotted package of a library file, e.g. CTADefaceLib.engines.nnunet for .../engines/nnunet/engine.py."""
    for root in (CORE, EVAL):
        if path.startswith(root + os.sep):
            parts = [os.path.basename(root)] + os.path.relpath(os.path.dirname(path), root).split(os.sep)
            return ".".join(p for p in parts if p != ".")
    return ""


def imported_modules(path):
    """Absolute dotted names of everything `path` imports (relative imports resolved), anywhere in the file."""
    tree = ast.parse(open(path, encoding="utf-8").read(), filename=path)
    package = package_of(path)
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.append(module)
            # `from . import bridge` imports a module too
            names += [f"{module}.{alias.name}" for alias in node.names]
    return names


def offenders(files, forbidden):
    found = []
    for path in files:
        for name in imported_modules(path):
            if forbidden(name):
                found.append(f"{os.path.relpath(path, REPO)} imports {name}")
    return sorted(set(found))


def under(root, *folders):
    return tuple(os.path.join(root, f) + os.sep for f in folders)


def test_core_imports_no_slicer_qt_vtk_or_evaluation():
    front = under(CORE, "slicer", "commands")
    core = [p for p in python_files(CORE) if not p.startswith(front)]
    assert offenders(core, lambda n: n.split(".")[0] in ("slicer", "qt", "ctk", "vtk", "CTADefaceEvalLib")) == []


def test_core_front_doors_import_no_evaluation():
    """The evaluation is a plug-in: even the command layer finds it by entry point, never by an import statement."""
    assert offenders(python_files(CORE), lambda n: n.split(".")[0] == "CTADefaceEvalLib") == []


@pytest.mark.parametrize("folder", ["engines", "io", "models"])
def test_engines_io_and_models_do_not_import_front_doors(folder):
    front_doors = (
        "CTADefaceLib.commands",
        "CTADefaceLib.cli",
        "CTADefaceLib.launcher",
        "CTADefaceLib.slicer",
        "CTADefaceLib.pipeline",
    )
    files = list(python_files(os.path.join(CORE, folder)))
    assert files
    assert offenders(files, lambda n: n in front_doors or n.startswith(tuple(f + "." for f in front_doors))) == []


def test_nothing_installed_imports_testing():
    files = list(python_files(os.path.join(REPO, "CTADeface"))) + list(
        python_files(os.path.join(REPO, "CTADefaceEval"))
    )
    assert offenders(files, lambda n: n.split(".")[0] in TESTING_MODULES) == []
    by_path = []  # nor builds a path into it (as `ctadeface bench` once loaded Testing/benchmarks/speed.py)
    for path in files:
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, ast.Call) and any(
                isinstance(c, ast.Constant) and "Testing" in str(c.value) for arg in node.args for c in ast.walk(arg)
            ):
                by_path.append(f"{os.path.relpath(path, REPO)}:{node.lineno}")
    assert by_path == []


def test_the_checker_sees_what_it_looks_for():
    """The walk resolves relative imports: a core file that pulled in the evaluation would be caught."""
    names = imported_modules(os.path.join(CORE, "slicer", "logic.py"))
    assert "CTADefaceLib.slicer.bridge" in names and "CTADefaceLib.pipeline" in names
    assert "CTADefaceLib.engines.nnunet" in imported_modules(os.path.join(CORE, "slicer", "child_process.py"))
