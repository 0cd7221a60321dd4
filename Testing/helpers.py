"""What several test files share besides the synthetic CTs (builders.py): the `ctadeface` command run as a user runs
it, its one-sentence errors, file digests, a real small file system, and whether a process still runs."""

import contextlib
import hashlib
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOX = ("--engine", "box", "--no-progress")  # `ctadeface deface` options for a quick run: no model, no progress bar
# ... for a DICOM study: every series a mask reaches is defaced, however small the box's mask on a coarse phantom
DICOM_BOX = (*BOX, "--min-face-ml", "0")


# ------------------------------------------------------------------------------------ the command
def cli_environment(**extra):
    """os.environ with this checkout's libraries first on PYTHONPATH (the editable install may be another tree's)."""
    ours = [os.path.join(REPO, "CTADeface"), os.path.join(REPO, "CTADefaceEval")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(ours + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.update(extra)
    return env


def cli_command(*args):
    return [sys.executable, "-m", "CTADefaceLib.cli", *map(str, args)]


def ctadeface(*args, env=None, timeout=600, **popen):
    """`ctadeface ARGS...` in a real child process; its CompletedProcess (text output captured)."""
    return subprocess.run(
        cli_command(*args),
        capture_output=True,
        text=True,
        env=cli_environment(**(env or {})),
        timeout=timeout,
        **popen,
    )


def one_sentence(result):
    """The run failed with exactly one `ctadeface: error:` line and no traceback; returns that line."""
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("ctadeface: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


# ------------------------------------------------------------------------------------ files and the system
def sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def tree_hashes(root):
    """{path: sha256} of every file under `root`: equal before and after means nothing there was touched."""
    return {
        os.path.join(folder, name): sha256(os.path.join(folder, name))
        for folder, _, names in os.walk(root)
        for name in names
    }


@contextlib.contextmanager
def mounted_tmpfs(path, options):
    """A real small file system mounted at `path` (root only; skipped where mounting is not permitted); unmounted
    whatever happens. options: mount's -o, e.g. "size=64k" or "ro"."""
    os.makedirs(path, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({mounted.stderr.strip() or 'mount failed'})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def process_alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone: it no longer runs). Linux /proc."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            return not any(line.startswith("State:") and "Z" in line for line in handle)
    except FileNotFoundError:
        return False
