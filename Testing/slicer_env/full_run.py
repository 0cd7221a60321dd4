"""Full first-use run in a Python holding Slicer's own package versions (run by full_run.sh, not by pytest).

Runs the installer's own code (dependencies.check + run_install, what the widget calls), then the child
processes exactly as the widget builds them (slicer.child_process.build_deface_command + DefaceProcess, which
slicer.logic.startDeface uses): install the synthetic model from its zip, deface the bundled sample with it and
with the box engine. Checks that the packages Slicer bundles keep their versions. Exit status 0 = all good.
"""

import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "CTADeface"))

from CTADefaceLib.settings import DefaceSettings  # noqa: E402
from CTADefaceLib.slicer import installer as dependencies  # noqa: E402
from CTADefaceLib.slicer.child_process import DefaceProcess, build_deface_command  # noqa: E402

SAMPLE = os.path.join(REPO, "CTADeface", "CTADefaceLib", "data", "sample_phantom.nii.gz")
MODEL_ZIP = os.path.join(REPO, "CTADeface", "CTADefaceLib", "data", "synthetic-face-model.zip")


def bundled_versions(listing: str) -> dict:
    names = [line.split("==")[0].strip() for line in open(listing) if "==" in line and not line.startswith("#")]
    versions = dependencies.installed_versions()
    return {dependencies.canonical_name(n): versions.get(dependencies.canonical_name(n)) for n in names}


def run_child(argv, what):
    started = time.perf_counter()
    process = DefaceProcess(argv).start()
    progress = []
    while not process.finished:
        process.poll()
        progress.append(process.progress)
        time.sleep(0.1)
    process.poll()
    message = process.error_message()
    print(f"[full-run] {what}: exit {process.returncode} in {time.perf_counter() - started:.1f} s")
    if message:
        print("\n".join(process.lines[-30:]))
        raise SystemExit(f"[full-run] FAILED {what}: {message}")
    return process, progress


def main(listing: str) -> int:
    before = bundled_versions(listing)
    report = dependencies.check("nnunet")
    print("[full-run] before:", json.dumps(report.missing_nnunet))
    wanted = {"matplotlib", "seaborn", "tqdm"}
    reported = {dependencies.canonical_name(r.split("<")[0].split(">")[0].split("=")[0]) for r in report.missing_nnunet}
    assert wanted <= reported, f"check() did not report {wanted - reported} missing"
    started = time.perf_counter()
    after = dependencies.run_install(report, python=sys.executable, log=lambda line: print("[pip]", line))
    print(f"[full-run] run_install: {time.perf_counter() - started:.1f} s; complete after: {after.complete}")
    assert after.complete, after.summary()
    changed = {k: (v, bundled_versions(listing)[k]) for k, v in before.items() if bundled_versions(listing)[k] != v}
    assert not changed, f"the installer changed Slicer's own packages: {changed}"
    print(f"[full-run] Slicer's {len(before)} bundled packages unchanged")
    print("[full-run] torch requirement for PyTorchUtils:", dependencies.torch_requirement())

    work = tempfile.mkdtemp(prefix="ctadeface-full-run-")
    os.environ["CTADEFACE_HOME"] = os.path.join(work, "home")
    from CTADefaceLib.models.bundled import SYNTHETIC_NAME

    run_child(
        [sys.executable, "-m", "CTADefaceLib.cli", "models", "install", SYNTHETIC_NAME, "--from", MODEL_ZIP],
        "install the synthetic model from its zip (the widget's Install from file)",
    )
    for settings in (DefaceSettings(model=SYNTHETIC_NAME, device="cpu", roi=False), DefaceSettings(engine="box")):
        out = os.path.join(work, settings.engine)
        process, progress = run_child(build_deface_command(SAMPLE, out, settings), f"deface with {settings.engine}")
        sidecar = json.load(open(os.path.join(out, "sample_phantom_deface.json")))
        assert sidecar["mask_volume_ml"] > 20, sidecar["mask_volume_ml"]
        if settings.engine == "nnunet":
            assert any(0 < p < 1 for p in progress) or any("%| tile" in line for line in process.lines), (
                "no tile progress from the model child"
            )
    print("[full-run] OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
