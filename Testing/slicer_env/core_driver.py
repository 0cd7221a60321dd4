"""Import every module of the core and run the child process, in a venv that holds exactly Slicer's bundled packages.

Run by build_env.py with the venv's python (`-I`), after driver.py. driver.py loads the module files the way Slicer
does, which imports only what a click reaches; this driver covers the rest of the core, so that a module using
something this Python lacks (a standard-library call added after 3.9, a package Slicer does not bundle, imported at
load time) fails here and not in a user's Slicer:
- every module of CTADefaceLib is imported (the Slicer glue with driver.py's stand-ins for qt, ctk and slicer),
  except those listed in FIRST_USE, which need packages that only the first-use installer brings;
- the child process is run with this Python exactly as slicer/child_process.py launches it: `python -m
  CTADefaceLib.cli --help`, then `deface` with the box engine on the bundled sample, in child_environment(),
  with the packages the installer adds for any engine (installer.CHILD_REQUIREMENTS, built by build_env.py into
  a folder passed as --first-use) and nothing else.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

#: Modules imported only after the first-use installer has added what they need, with the reason; every other
#: module of the core must import with Slicer's bundled packages alone.
FIRST_USE = {
    "CTADefaceLib.engines.nnunet.tiled_predictor": "subclasses nnunetv2's nnUNetPredictor and imports torch at "
    "load time; engines/nnunet/engine.py imports it when the model loads, after the installer added nnU-Net",
}


def core_modules(library_parent: str) -> list[str]:
    """Dotted names of every module of CTADefaceLib under `library_parent`, parents before children."""
    root = os.path.join(library_parent, "CTADefaceLib")
    names = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if os.path.isfile(os.path.join(dirpath, d, "__init__.py")))
        package = os.path.relpath(dirpath, library_parent).replace(os.sep, ".")
        for name in sorted(filenames):
            if name.endswith(".py"):
                names.append(package if name == "__init__.py" else f"{package}.{name[:-3]}")
    return sorted(names, key=lambda n: (n.count("."), n))


def import_all(library_parent: str) -> list[str]:
    """Import every core module but FIRST_USE; returns 'module: error' for each that failed."""
    failures = []
    for name in core_modules(library_parent):
        if name in FIRST_USE:
            continue
        try:
            importlib.import_module(name)
        except Exception as err:  # any failure is the finding: report them all, not only the first
            failures.append(f"{name}: {type(err).__name__}: {err}")
    return failures


def run(argv: list[str], env: dict, expect_in_output: str) -> str:
    """Run a child; fail unless it exits 0 and prints `expect_in_output`. Returns its output."""
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    if done.returncode != 0 or expect_in_output not in output:
        raise AssertionError(f"{' '.join(argv[1:4])} ... exited {done.returncode}:\n{output[-3000:]}")
    return output


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", required=True)
    parser.add_argument("--list", required=True)
    parser.add_argument("--first-use", required=True, help="folder holding installer.CHILD_REQUIREMENTS")
    args = parser.parse_args(argv)
    slicer_version = re.search(r"slicer-([\w.]+)\.txt$", args.list).group(1)
    os.environ.pop("CTADEFACE_HOME", None)
    os.environ["HOME"] = os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="ctadeface-slicer-env-")
    import standins

    standins.install(slicer_version)  # the Slicer glue (slicer/bridge.py, widget_base.py) imports qt and slicer
    library_parent = os.path.join(args.repo, "CTADeface")
    sys.path.insert(0, library_parent)
    stale = [name for name in FIRST_USE if name not in core_modules(library_parent)]
    if stale:
        raise AssertionError(f"FIRST_USE names modules that no longer exist: {stale}")
    failures = import_all(library_parent)
    if failures:
        raise AssertionError("core modules that fail to import here:\n  " + "\n  ".join(failures))
    count = len(core_modules(library_parent)) - len(FIRST_USE)

    from CTADefaceLib.models.bundled import DATA_DIR
    from CTADefaceLib.settings import DefaceSettings
    from CTADefaceLib.slicer.child_process import build_deface_command, child_environment

    outdir = tempfile.mkdtemp(prefix="ctadeface-child-")
    command = build_deface_command(
        os.path.join(DATA_DIR, "sample_phantom.nii.gz"), outdir, DefaceSettings(engine="box", device="cpu")
    )
    # The Slicer application's environment carries no PYTHONPATH; what pip installed at first use lies in site-packages,
    # which --first-use stands for.
    env = child_environment({k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, command)
    env["PYTHONPATH"] += os.pathsep + os.path.abspath(args.first_use)
    run([sys.executable, "-m", "CTADefaceLib.cli", "--help"], env, "deface")
    run(command, env, "")
    written = sorted(os.listdir(outdir))
    if not any(name.endswith(".nii.gz") for name in written):
        raise AssertionError(f"the child wrote no defaced image: {written}")
    print(
        f"OK Slicer {slicer_version} (Python {sys.version.split()[0]}): {count} core modules imported "
        f"({len(FIRST_USE)} wait for the first-use install); the child's --help and a box deface ran: {written}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
