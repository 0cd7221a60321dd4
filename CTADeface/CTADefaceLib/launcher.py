"""The `ctadeface` console entry: set glibc's allocator for nnU-Net on the CPU, then run the CLI.

About 30% of an nnU-Net forward pass on a CPU is page-fault time: glibc maps each large activation
buffer with mmap and unmaps it when freed, so every tile faults its memory in again. These settings
keep freed memory in the heap instead, at the cost of a higher peak (docs/facts.md has the measurement;
`python Testing/benchmarks/speed.py --compare` repeats it). glibc reads them only when the process starts, so
the entry point re-executes itself once with them set; `CTADEFACE_MALLOC_SET` marks the second start.
Opt out with CTADEFACE_MALLOC_TUNING=0; variables the user set are left alone. The Slicer module's
child process gets the same environment from slicer/child_process.child_environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

MALLOC_SETTINGS = {
    "MALLOC_MMAP_MAX_": "0",  # never mmap: large buffers come from the heap and stay mapped
    "MALLOC_TRIM_THRESHOLD_": "68719476736",  # never give the heap's top back to the OS between tiles
    "MALLOC_TOP_PAD_": "1073741824",  # grow the heap in 1 GiB steps (fewer brk calls, fewer faults)
}
MARKER = "CTADEFACE_MALLOC_SET"
OPT_OUT = "CTADEFACE_MALLOC_TUNING"


def cuda_driver_present() -> bool:
    """An NVIDIA driver is loaded (cheap: no torch import). With one, device auto will most likely run on CUDA."""
    return os.path.exists("/proc/driver/nvidia/version")


def requested_device(argv) -> str:
    """The --device value in argv (auto when absent, as the parser's default)."""
    device = "auto"
    for i, arg in enumerate(argv):
        if arg.startswith("--device="):
            device = arg.split("=", 1)[1]
        elif arg == "--device" and i + 1 < len(argv):
            device = argv[i + 1]
    return device


def wanted(env=None, argv=None) -> bool:
    """On glibc Linux, unless opted out or the model runs on a GPU (where host allocation is not the cost, and a
    heap that never shrinks only costs memory): device cuda/mps, or auto on a machine with an NVIDIA driver."""
    env = os.environ if env is None else env
    argv = sys.argv[1:] if argv is None else argv
    if not sys.platform.startswith("linux") or env.get(OPT_OUT, "1").lower() in ("0", "false", "no", "off"):
        return False
    device = requested_device(argv)
    if device in ("cuda", "mps"):
        return False
    return not (device == "auto" and cuda_driver_present())


def malloc_environment(env: Mapping[str, str], argv=None) -> dict[str, str]:
    """`env` plus the allocator settings (not overriding the user's own), when wanted."""
    env = dict(env)
    if wanted(env, argv if argv is not None else []):
        for key, value in MALLOC_SETTINGS.items():
            env.setdefault(key, value)
        env[MARKER] = "1"
    return env


def main() -> int:
    if wanted() and os.environ.get(MARKER) != "1" and sys.argv and os.path.isfile(sys.argv[0]):
        env = malloc_environment(os.environ, sys.argv[1:])
        try:
            os.execve(sys.executable, [sys.executable, sys.argv[0], *sys.argv[1:]], env)
        except OSError:
            pass  # run without the settings rather than not at all
    from .cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
