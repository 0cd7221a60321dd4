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

#: The folder that holds CTADefaceLib: the child imports the same code the parent runs.
LIBRARY_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PERCENT = re.compile(r"(\d{1,3})%\|")  # tqdm bars: " 42%|####      | 21/50 [...]"
_CLI_ERROR = re.compile(r"^ctadeface: error: (?P<message>.+)$")
_FAILED = re.compile(r"^FAILED\s+(?P<input>.+?): (?P<message>.+)$")


def build_deface_command(inputs, outdir: str, settings, *, python: str | None = None,
                         overwrite: bool = True) -> list[str]:
    """argv for `python -m CTADefaceLib.cli deface ...` that reproduces `settings` (a DefaceSettings)."""
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    argv = [python or sys.executable, "-m", "CTADefaceLib.cli", "deface", *inputs, "-o", outdir,
            "--engine", settings.engine, "--model", settings.model, "--fill", str(settings.fill),
            "--device", settings.device, "--tile-step", repr(float(settings.tile_step)),
            "--margin-mm", repr(float(settings.margin_mm))]
    if settings.mirroring:
        argv.append("--mirroring")
    if not getattr(settings, "roi", True):
        argv.append("--no-roi")
    if settings.largest_component:
        argv.append("--largest-component")
    if settings.fill_holes:
        argv.append("--fill-holes")
    if settings.output_format:
        argv += ["--format", settings.output_format]
    if overwrite:
        argv.append("--overwrite")  # outputs go to a fresh temporary folder; never an input
    return argv


def child_environment(base: dict | None = None) -> dict:
    env = dict(os.environ if base is None else base)
    paths = [LIBRARY_PARENT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"  # lines arrive as they are printed, not when the child exits
    from .launcher import malloc_environment

    return malloc_environment(env)  # glibc settings that cut nnU-Net's CPU passes by ~30% (launcher.py)


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
        self.env = child_environment(env)
        self.cwd = cwd
        self.lines: list[str] = []
        self.progress = 0.0
        self.cancelled = False
        self._process: subprocess.Popen | None = None
        self._queue: queue.Queue = queue.Queue()
        self._reader: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "DefaceProcess":
        kwargs = {}
        if os.name == "posix":
            kwargs["start_new_session"] = True  # its own process group: cancel kills workers too
        else:
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
        self._process = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd, **kwargs)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        """Split on \\r as well as \\n: progress bars redraw one line with carriage returns."""
        pending = b""
        stream = self._process.stdout
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
        return (self._process is not None and self._process.poll() is not None
                and (self._reader is None or not self._reader.is_alive()) and self._queue.empty())

    def wait(self, timeout: float | None = None) -> int:
        code = self._process.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.poll()
        return code

    def cancel(self, grace_s: float = 3.0) -> None:
        """Stop the child and its process group: terminate, then kill if it does not exit in `grace_s`."""
        if not self.running:
            return
        self.cancelled = True
        self._signal_group(signal.SIGTERM if os.name == "posix" else None)
        try:
            self._process.wait(grace_s)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL if os.name == "posix" else None)
            self._process.wait(grace_s)

    def _signal_group(self, sig) -> None:
        if os.name == "posix":
            try:
                os.killpg(self._process.pid, sig)
            except ProcessLookupError:
                pass
        else:
            self._process.kill()

    def error_message(self) -> str | None:
        if self.cancelled:
            return "Defacing was cancelled."
        return error_from_output(self.lines, self.returncode)
