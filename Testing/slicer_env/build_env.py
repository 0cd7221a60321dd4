"""Build one venv per supported Slicer holding EXACTLY the Python packages that Slicer bundles, then run the driver.

    python Testing/slicer_env/build_env.py            # build what is missing, run the driver in each venv
    python Testing/slicer_env/build_env.py --build    # only build

Each list (slicer-5.8.txt, slicer-5.10.txt, slicer-main.txt) names its Python in a `# python: X.Y` header line;
the interpreter is pyenv's (override with SLICER_ENV_PYTHON_3_9=/path etc.). Venvs and pip's download cache live
under $CTADEFACE_CI_CACHE (default ~/.cache/ctadeface-ci), a folder CI can keep: a venv is named after its list's
hash, so editing a list builds a fresh one and a warm run only starts the driver.
A built venv is checked against its list (`pip list`): a package too many or too few fails the build.
Beside each venv, a folder holds what Slicer's first-use installer adds for any engine (installer.CHILD_REQUIREMENTS):
core_driver.py gives it to the child process only, as pip's install into Slicer's site-packages would.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
LISTS = ("slicer-5.8.txt", "slicer-5.10.txt", "slicer-main.txt")
PYENV_PATCH = {"3.9": "3.9.18", "3.12": "3.12.1"}


def cache_root() -> str:
    return os.path.abspath(os.path.expanduser(os.environ.get("CTADEFACE_CI_CACHE", "~/.cache/ctadeface-ci")))


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_list(path: str) -> tuple[str, dict[str, str]]:
    """(python X.Y, {normalized name: version}) of a bundled-package list."""
    python, pins = None, {}
    for line in open(path, encoding="utf-8"):
        header = re.match(r"#\s*python:\s*(\d+\.\d+)", line)
        if header:
            python = header.group(1)
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            name, version = requirement.split("==")
            pins[normalized(name.split("[")[0])] = version
    if python is None:
        raise SystemExit(f"{path} has no '# python: X.Y' header line.")
    return python, pins


def interpreter(python: str) -> str:
    override = os.environ.get("SLICER_ENV_PYTHON_" + python.replace(".", "_"))
    path = override or os.path.expanduser(f"~/.pyenv/versions/{PYENV_PATCH[python]}/bin/python")
    if not os.path.isfile(path):
        raise SystemExit(f"Python {python} not found at {path}; set SLICER_ENV_PYTHON_{python.replace('.', '_')}.")
    return path


def venv_dir(list_path: str) -> str:
    digest = hashlib.sha256(open(list_path, "rb").read()).hexdigest()[:10]
    name = os.path.splitext(os.path.basename(list_path))[0]
    return os.path.join(cache_root(), "slicer-env", f"{name}-{digest}")


def venv_python(folder: str) -> str:
    return os.path.join(folder, "bin", "python")


def installed(folder: str) -> dict[str, str]:
    out = subprocess.run(
        [venv_python(folder), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {normalized(p["name"]): p["version"] for p in json.loads(out)}


def build(list_path: str) -> str:
    """The venv for `list_path`, built (into a temporary name, renamed when verified) if missing."""
    folder = venv_dir(list_path)
    if os.path.isfile(os.path.join(folder, ".verified")):
        return folder
    python, pins = read_list(list_path)
    partial = folder + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    subprocess.run([interpreter(python), "-m", "venv", partial], check=True)
    # The venv's own pip installs the list, pip itself included (Slicer pins pip, setuptools and wheel too);
    # --no-deps: exactly the list, nothing its metadata asks for; --only-binary: no compiler, no surprises.
    subprocess.run(
        [
            venv_python(partial),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--cache-dir",
            os.path.join(cache_root(), "pip"),
            "-r",
            list_path,
        ],
        check=True,
    )
    have = installed(partial)
    if have != pins:
        extra = sorted(set(have) - set(pins))
        missing = sorted(f"{n}=={v}" for n, v in pins.items() if have.get(n) != v)
        raise SystemExit(
            f"{os.path.basename(list_path)}: the venv differs from the list: extra {extra}, "
            f"missing or other version {missing}."
        )
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.rename(partial, folder)  # venvs keep absolute paths in scripts only; `bin/python -m` works after a rename
    open(os.path.join(folder, ".verified"), "w").close()
    return folder


def child_requirements() -> list[str]:
    """installer.CHILD_REQUIREMENTS, read from the source (this script runs in any Python, without the library)."""
    source = open(os.path.join(REPO, "CTADeface", "CTADefaceLib", "slicer", "installer.py"), encoding="utf-8").read()
    found = re.search(r"^CHILD_REQUIREMENTS = (\(.*?\))$", source, re.MULTILINE)
    if found is None:
        raise SystemExit("installer.py defines no CHILD_REQUIREMENTS tuple.")
    return list(ast.literal_eval(found.group(1)))


def build_first_use(folder: str) -> str:
    """The folder beside venv `folder` holding CHILD_REQUIREMENTS (pip --target, with their dependencies, as the
    installer installs them), built once per requirement list."""
    requirements = child_requirements()
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:10]
    target = f"{folder}-first-use-{digest}"
    if os.path.isfile(os.path.join(target, ".verified")):
        return target
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(
        [venv_python(folder), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--only-binary=:all:"]
        + ["--cache-dir", os.path.join(cache_root(), "pip"), "--target", target, *requirements],
        check=True,
    )
    open(os.path.join(target, ".verified"), "w").close()
    return target


def run_driver(list_path: str, folder: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}  # no PYTHONPATH leaks in
    env["SLICER_ENV_LIST"] = list_path
    print(f"== {os.path.basename(list_path)}: {folder}", flush=True)
    status = subprocess.run(
        [venv_python(folder), "-I", os.path.join(HERE, "driver.py"), "--repo", REPO, "--list", list_path], env=env
    ).returncode
    # the rest of the core, and the child process the module starts (core_driver.py)
    first_use = build_first_use(folder)
    core = [os.path.join(HERE, "core_driver.py"), "--repo", REPO, "--list", list_path, "--first-use", first_use]
    core_status = subprocess.run(
        [venv_python(folder), "-I", *core], env=env
    ).returncode  # runs even if driver.py failed
    return status or core_status


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="store_true", help="only build the venvs")
    parser.add_argument("lists", nargs="*", default=[os.path.join(HERE, name) for name in LISTS])
    args = parser.parse_args(argv)
    failed = []
    for list_path in args.lists:
        folder = build(os.path.abspath(list_path))
        if not args.build and run_driver(os.path.abspath(list_path), folder) != 0:
            failed.append(os.path.basename(list_path))
    if failed:
        print("FAILED in " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
