"""Running `ctadeface deface` in a child process, so Slicer stays responsive and Cancel really stops it.

The GUI polls `DefaceProcess.poll()` from a timer: it returns the new output lines and a progress
fraction parsed from them; `cancel()` kills the child and everything it started (nnU-Net worker
processes included). A failure ends as `error_message()`: one readable sentence taken from the
CLI's own "ctadeface: error: ..." or "FAILED ..." line, never a wall of traceback.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading

from ..engines.nnunet import PROGRESS_ENV  # set in the child's environment: tile progress lines

#: The folder that holds CTADefaceLib (this file is CTADefaceLib/slicer/child_process.py): the child imports
#: the same code the parent runs.
LIBRARY_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_PERCENT = re.compile(r"(\d{1,3})%\|")  # tqdm bars: " 42%|####      | 21/50 [...]"
_CLI_ERROR = re.compile(r"^ctadeface: error: (?P<message>.+)$")
_FAILED = re.compile(r"^FAILED\s+(?P<input>.+?): (?P<message>.+)$")


def build_deface_command(
    inputs, outdir: str, settings, *, python: str | None = None, overwrite: bool = True
) -> list[str]:
    """argv for `python -m CTADefaceLib.cli deface ...` that reproduces `settings` (a DefaceSettings).

    The options come from settings.DefaceSettings.to_argv, the inverse of the parser the child builds
    from the same field definitions, so no setting is lost on the way.
    """
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    argv = [python or sys.executable, "-m", "CTADefaceLib.cli", "deface", *inputs, "-o", outdir, *settings.to_argv()]
    if overwrite:
        argv.append("--overwrite")  # outputs go to a fresh temporary folder; never an input
    return argv


def child_environment(
    base: dict | None = None, argv: list[str] | None = None, *, library_folders: tuple[str, ...] = ()
) -> dict:
    """The child's environment: this library (and `library_folders`, e.g. the evaluation plug-in's folder) first
    on PYTHONPATH, unbuffered output, tile progress lines, and glibc's allocator settings when the model will run
    on the CPU (decided from argv's --device). Applying it twice gives the same environment."""
    env = dict(os.environ if base is None else base)
    paths = [*library_folders, LIBRARY_PARENT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"  # lines arrive as they are printed, not when the child exits
    env[PROGRESS_ENV] = (
        "1"  # engines/nnunet/tiled_predictor.py prints "NN%|" per tile: the progress bar moves during a deface
    )
    from ..launcher import malloc_environment

    return malloc_environment(env, argv or [])  # faster nnU-Net passes on a CPU (docs/facts.md, launcher.py)


def hidden_window_options() -> dict:
    """Popen keyword arguments that keep a console window from popping up on Windows (as Slicer's own
    slicer.util.launchConsoleProcess does with STARTUPINFO); nothing elsewhere."""
    if sys.platform != "win32":  # (not os.name: type checkers know the Windows-only names under this test)
        return {}
    info = subprocess.STARTUPINFO()
    info.dwFlags |= subprocess.STARTF_USESHOWWINDOW
    info.wShowWindow = 0  # SW_HIDE
    return {"startupinfo": info, "creationflags": getattr(subprocess, "CREATE_NO_WINDOW", 0x08000000)}


def kill_tree_command(pid: int) -> list[str]:
    """Windows: taskkill ends the process and every process it started (/T), at once (/F). In Slicer the child is
    PythonSlicer, a launcher that runs python-real as its own child: killing only the launcher would leave the
    model running and the output pipe open."""
    return ["taskkill", "/F", "/T", "/PID", str(pid)]


def parse_progress(line: str) -> float | None:
    """0..1 from a tqdm percentage in the line, else None."""
    found = _PERCENT.findall(line)
    return min(int(found[-1]), 100) / 100.0 if found else None


def error_from_output(lines: list[str], returncode: int | None) -> str | None:
    """The one sentence that explains a failed run, or None when it succeeded."""
    if returncode == 0:
        return None
    for line in reversed(lines):
        match = _CLI_ERROR.match(line.strip())
        if match:
            return match.group("message")
    for line in reversed(lines):
        match = _FAILED.match(line.strip())
        if match:
            return match.group("message")
    if returncode is not None and returncode < 0:
        return f"The defacing process was stopped (signal {-returncode})."
    last = next((line.strip() for line in reversed(lines) if line.strip()), "")
    return f"The defacing process failed (exit status {returncode}): {last or 'no output'}"


class DefaceProcess:
    """One child process: start(), then poll() until finished; cancel() at any time."""

    def __init__(self, argv: list[str], env: dict | None = None, cwd: str | None = None):
        self.argv = list(argv)
        self.env = child_environment(env, self.argv)
        self.cwd = cwd
        self._cleanups: list = []  # called once when the run is over (finished, failed or cancelled)
        self.lines: list[str] = []
        self.progress = 0.0
        self.cancelled = False
        self._process: subprocess.Popen | None = None
        self._queue: queue.Queue = queue.Queue()
        self._reader: threading.Thread | None = None
        #: Set by whoever starts a deface (slicer/logic.py): the files the child writes (pipeline.output_paths) and
        #: the temporary folder that holds its input and outputs.
        self.paths: dict[str, str] = {}
        self.workFolder: str | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> DefaceProcess:
        kwargs = hidden_window_options()
        if os.name == "posix":
            kwargs["start_new_session"] = True  # its own process group: cancel kills the launcher's child and workers
        self._process = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
            **kwargs,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _started(self) -> subprocess.Popen:
        if self._process is None:
            raise RuntimeError("the defacing process has not been started (call start() first)")
        return self._process

    def _read(self) -> None:
        """Split on \\r as well as \\n: progress bars redraw one line with carriage returns."""
        pending = b""
        stream = self._started().stdout
        assert stream is not None, "start() opens the child's output as a pipe"
        while True:
            chunk = stream.read1(4096) if hasattr(stream, "read1") else stream.read(1)
            if not chunk:
                break
            pending += chunk
            parts = re.split(rb"[\r\n]", pending)
            pending = parts.pop()
            for part in parts:
                if part.strip():
                    self._queue.put(part.decode("utf-8", "replace"))
        if pending.strip():
            self._queue.put(pending.decode("utf-8", "replace"))
        self._queue.put(None)  # end of output

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def poll(self) -> list[str]:
        """New output lines since the last call (never blocks); updates `progress`."""
        new = []
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                continue
            new.append(line)
            fraction = parse_progress(line)
            if fraction is not None:
                self.progress = fraction
        self.lines.extend(new)
        return new

    @property
    def finished(self) -> bool:
        """True when the child has exited and all its output has been read."""
        return (
            self._process is not None
            and self._process.poll() is not None
            and (self._reader is None or not self._reader.is_alive())
            and self._queue.empty()
        )

    def wait(self, timeout: float | None = None) -> int:
        code = self._started().wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.poll()
        return code

    def cancel(self, grace_s: float = 3.0) -> None:
        """Stop the child and every process it started, then run the cleanups.

        POSIX: SIGTERM to the process group, then SIGKILL to whatever of the group is left after `grace_s` (a
        launcher may exit on SIGTERM while its child ignores it). Windows: taskkill /T /F on the tree.
        """
        if self._process is None:
            return
        if self.running:
            self.cancelled = True
            if os.name == "posix":
                self._signal_group(signal.SIGTERM)
                try:
                    self._process.wait(grace_s)
                except subprocess.TimeoutExpired:
                    pass
                self._signal_group(signal.SIGKILL)
            else:
                subprocess.run(
                    kill_tree_command(self._process.pid),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    check=False,
                    **hidden_window_options(),
                )
            try:
                self._process.wait(grace_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(grace_s)
            if self._reader is not None:
                self._reader.join(timeout=grace_s)  # the pipe closes once nothing of the tree holds it
        self.cleanup()

    def _signal_group(self, sig) -> None:
        try:
            os.killpg(self._started().pid, sig)
        except (ProcessLookupError, PermissionError):
            pass  # the group is already gone

    def add_cleanup(self, function) -> None:
        """Call `function()` once when the run is over: cancel(), or cleanup() after the result was read."""
        self._cleanups.append(function)

    def cleanup(self) -> None:
        """Run the cleanups (e.g. delete the temporary folder holding a copy of the patient's CT); idempotent."""
        while self._cleanups:
            function = self._cleanups.pop()
            try:
                function()
            except OSError as err:  # a cleanup must not hide the run's own result
                import logging

                logging.getLogger(__name__).warning("Cleanup after the defacing process failed: %s", err)

    def error_message(self) -> str | None:
        if self.cancelled:
            return "Defacing was cancelled."
        return error_from_output(self.lines, self.returncode)
