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


# The core's layers, lowest first. A module may import its own layer and the layers below it, never one above:
# the settings know no engine, the engines know no pipeline, the pipeline knows no front door.
LAYERS = (
    ("base", ("CTADefaceLib", "errors", "records", "hashing")),  # "CTADefaceLib": the package itself (__version__)
    ("foundation", ("settings", "fill", "mask", "io", "models", "synthetic", "deid")),
    ("engines", ("engines",)),
    ("pipeline", ("pipeline", "groundtruth", "dicom")),  # dicom: whole studies, through the pipeline's mask step
    ("front doors", ("commands", "cli", "launcher", "slicer")),
)


def layer_of(module):
    """Index in LAYERS of a CTADefaceLib module name."""
    parts = module.split(".")
    first = parts[1] if len(parts) > 1 else "CTADefaceLib"
    for index, (_, members) in enumerate(LAYERS):
        if first in members:
            return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS")


def module_name(path):
    relative = os.path.relpath(path, os.path.dirname(CORE))[: -len(".py")].split(os.sep)
    return ".".join(relative[:-1] if relative[-1] == "__init__" else relative)


def import_graph():
    """{core module: the core modules it imports}, imports inside functions included (they run on first use).

    An imported name is taken to the module that defines it: `from ..io.volume import read_image` is an import of
    CTADefaceLib.io.volume, `from . import __version__` one of CTADefaceLib."""
    files = {module_name(path): path for path in python_files(CORE)}

    def defining_module(name):
        parts = name.split(".")
        while parts and ".".join(parts) not in files:
            parts.pop()
        return ".".join(parts) or None

    graph = {}
    for name, path in files.items():
        graph[name] = {defining_module(n) for n in imported_modules(path) if n.split(".")[0] == "CTADefaceLib"}
        graph[name].discard(None)
        graph[name].discard(name)
    return graph


def test_every_core_module_has_a_layer():
    assert {layer_of(name) for name in import_graph()} == set(range(len(LAYERS)))


def test_no_layer_imports_a_higher_one():
    upward = [
        f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for name, targets in sorted(import_graph().items())
        for target in sorted(targets)
        if layer_of(target) > layer_of(name)
    ]
    assert upward == []


def test_the_deface_command_reaches_the_written_file_going_only_down():
    """`ctadeface deface`: cli -> commands.deface -> pipeline -> engines -> io.case_outputs (the atomic writes).
    Every module on the way is walked; each step stays in its layer or goes down, and the walk reaches the writer
    without passing through the Slicer glue or the evaluation."""
    graph = import_graph()
    start = "CTADefaceLib.commands.deface"
    seen, todo, steps = {start}, [start], []
    while todo:
        name = todo.pop()
        for target in graph[name]:
            steps.append((name, target))
            if target not in seen:
                seen.add(target)
                todo.append(target)
    assert {"CTADefaceLib.pipeline", "CTADefaceLib.engines", "CTADefaceLib.io.case_outputs"} <= seen
    assert not [name for name in seen if name.startswith("CTADefaceLib.slicer")]
    assert [(a, b) for a, b in steps if layer_of(b) > layer_of(a)] == []


def test_the_layer_check_catches_an_upward_import():
    """settings.py once built the engine (settings -> engines): that edge is what the check reports."""
    assert layer_of("CTADefaceLib.engines.nnunet.engine") > layer_of("CTADefaceLib.settings")
    assert layer_of("CTADefaceLib.pipeline") > layer_of("CTADefaceLib.engines")
    assert layer_of("CTADefaceLib.slicer.logic") > layer_of("CTADefaceLib.pipeline")
    assert "CTADefaceLib.engines" not in import_graph()["CTADefaceLib.settings"]


def test_evaluation_uses_the_core_and_the_core_finds_it_only_by_entry_point():
    """evaluation -> core, never the reverse: the plug-in is declared as an entry point, not imported."""
    uses_core = [p for p in python_files(EVAL) if any(n.startswith("CTADefaceLib") for n in imported_modules(p))]
    assert uses_core
    pyproject = open(os.path.join(REPO, "pyproject.toml"), encoding="utf-8").read()
    assert "CTADefaceEvalLib" in pyproject.split("entry-points", 1)[-1]
