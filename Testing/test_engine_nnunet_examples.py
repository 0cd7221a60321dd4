"""engines/nnunet/README.md and examples.py: the readme names what is there, and the examples run."""

import ast
import os
import re
import subprocess
import sys

import pytest

from helpers import cli_environment

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDER = os.path.join(REPO, "CTADeface", "CTADefaceLib", "engines", "nnunet")


def defined_names(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    return {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def test_the_readme_names_every_file_and_only_functions_that_exist():
    readme = open(os.path.join(FOLDER, "README.md"), encoding="utf-8").read()
    files = {n for n in os.listdir(FOLDER) if n.endswith(".py") and n != "__init__.py"}
    assert {f for f in files if f"`{f}`" not in readme} == set()
    defined = set().union(*(defined_names(os.path.join(FOLDER, f)) for f in files))
    named = set(re.findall(r"`(?:[a-z]+\.)?(_?[A-Za-z][A-Za-z_]+)`", readme)) - {n[:-3] for n in files}
    code_like = {n for n in named if "_" in n or n[0].isupper()}  # function and class names, not words or options
    assert code_like - defined - {"nnUNetPredictor", "whole_volume", "grow"} == set()
    assert {"_plan", "_predict_rounds", "wider_plan", "_fall_back_to_cpu", "check_nnunet_internals"} <= code_like


@pytest.mark.slow  # three model loads and predictions on the CPU (about 20 s)
def test_the_examples_run_and_the_tiled_rounds_give_the_engines_mask():
    done = subprocess.run(
        [sys.executable, "-m", "CTADefaceLib.engines.nnunet.examples", "--device", "cpu"],
        capture_output=True,
        text=True,
        env=cli_environment(),
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    engine = next(line for line in lines if line.startswith("engine:"))
    assert next(line for line in lines if line.startswith("region:"))
    rounds = [line for line in lines if line.startswith("tiled predictor: round")]
    assert rounds, done.stdout
    # the predictor driven by hand, round by round, finds the very face voxels the engine found
    assert int(engine.split()[1]) == int(rounds[-1].split(", ")[-1].split()[0]) > 0, done.stdout


def test_the_engine_and_the_predictor_define_no_closures():
    """Each step of a prediction is a method with its inputs as arguments: no function nested in another, so no
    closure can see a name that the enclosing step rebinds later (as `plan` once was)."""
    nested = []
    for name in ("engine.py", "tiled_predictor.py", "region.py"):
        tree = ast.parse(open(os.path.join(FOLDER, name), encoding="utf-8").read())
        for outer in ast.walk(tree):
            if isinstance(outer, (ast.FunctionDef, ast.AsyncFunctionDef)):
                nested += [
                    f"{name}: {getattr(inner, 'name', 'lambda')} in {outer.name}"
                    for inner in ast.walk(outer)
                    if inner is not outer and isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                ]
    assert nested == []
