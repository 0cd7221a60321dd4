"""What the CTADefaceEval module does, without Qt: the GUI and the tests call this.

MRML is reached only through `CTADefaceLib.slicer.bridge` (volume node -> SimpleITK image); rendering
and scoring are `cohort.score_image` (render + MTCNN + FaceNet), the same code as `ctadeface eval`; the
re-identification check of each defaced volume is `verdict.check_case` against the original, drawn by
`figure.save_check_figure` (its views side by side, detections and landmarks drawn); a cohort comparison is the `ctadeface eval compare` command run in a child process.

Rendering and scoring run in a child process: offscreen rendering needs torch/torchvision imported
before VTK's first render and an EGL window (render.py), neither of which may be arranged inside
Slicer's own process, which has a real window and has rendered long before.
"""

from __future__ import annotations

import os
import re
import sys

from CTADefaceLib.io.names import safe_file_name  # standard library only
from CTADefaceLib.slicer.child_process import DefaceProcess, child_environment  # standard library only

#: The folder that holds CTADefaceEvalLib: the compare child needs it on its path besides CTADefaceLib.
EVAL_LIBRARY_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORIGINAL_ROLE = "original"
BOX_COLOR = (0, 255, 0)  # green stands out on the CT-Muscle palette (browns, beige, white)
REPORT_FILE = "report.html"
_CASE_PROGRESS = re.compile(r"^\[(\d+)/(\d+)\]")  # evaluate_cohort logs "[i/n] case" per case


def _bridge():
    from CTADefaceLib.slicer import (
        bridge as slicerbridge,  # imports slicer: only on first use, so this file imports anywhere
    )

    return slicerbridge


# ------------------------------------------------------------------------------------ pictures
def draw_box(rgb, box, color=BOX_COLOR, thickness: int = 3):
    """A copy of the RGB picture with the rectangle `box` ([x1, y1, x2, y2] in pixels) drawn on it."""
    import numpy as np

    out = np.array(rgb, dtype=np.uint8, copy=True)
    if box is None:
        return out
    height, width = out.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, x2 = sorted((min(max(x1, 0), width - 1), min(max(x2, 0), width - 1)))
    y1, y2 = sorted((min(max(y1, 0), height - 1), min(max(y2, 0), height - 1)))
    t = max(1, int(thickness))
    out[y1 : min(y1 + t, y2 + 1), x1 : x2 + 1] = color
    out[max(y2 - t + 1, y1) : y2 + 1, x1 : x2 + 1] = color
    out[y1 : y2 + 1, x1 : min(x1 + t, x2 + 1)] = color
    out[y1 : y2 + 1, max(x2 - t + 1, x1) : x2 + 1] = color
    return out


def caption(result: dict) -> str:
    """Lines under a picture: name, face probability, FaceNet distance to the original, and the check's verdict
    with its reasons when it ran."""
    probability = f"face p = {result['probability']:.3f}" if result["box"] is not None else "no face found"
    if result["role"] == ORIGINAL_ROLE:
        return f"{result['name']} (original)\n{probability}"
    distance = "n/a" if result["distance"] is None else f"{result['distance']:.3f}"
    text = f"{result['name']}\n{probability}; FaceNet distance {distance}"
    if result.get("check"):
        text += f"\ncheck {result['check']}" + "".join(f"\n- {r}" for r in result.get("reasons", []))
    return text


# ------------------------------------------------------------------------------------ logic
class EvalLogic:
    """scoreVolumes (in this process) and the cohort comparison (in a child process)."""

    def __init__(self, size: int = 512):
        self.size = size

    def scoreVolumes(
        self,
        originalNode,
        defacedNodes,
        outFolder: str,
        size: int | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> list[dict]:
        """Render each volume from the anterior (CT-Muscle), score it, save the picture with the MTCNN box.

        The rendering and the face models run in a child process (`python -m CTADefaceEvalLib.slicer_logic`):
        offscreen VTK rendering needs settings (EGL window, torch imported before VTK) that must not be made
        inside Slicer's own process, which has a real window and has rendered already.
        Returns one dict per volume, the original first: name, nodeID, role ("original"/"defaced"),
        probability (highest MTCNN probability, 0.0 when no face), box ([x1, y1, x2, y2] or None),
        distance (FaceNet distance to the original's face; 0.0 for the original itself; None when either
        picture has no face: nothing to re-identify), png (path of the picture with the box drawn),
        render_s. With `check`, each defaced volume also gets check (PASS/REVIEW), reasons and check_png (its
        views side by side with the detections and landmarks drawn, verdict.check_case against the original).
        """
        import json

        from CTADefaceLib.errors import DefaceError
        from CTADefaceLib.io.volume import write_image_atomic

        if originalNode is None:
            raise DefaceError("Select the original (undefaced) volume.")
        bridge = _bridge()
        os.makedirs(outFolder, exist_ok=True)
        nodes = [originalNode] + [n for n in (defacedNodes or []) if n is not None and n is not originalNode]
        jobs, used = [], set()
        for index, node in enumerate(nodes):
            base = f"{index:02d}_{safe_file_name(bridge.node_name(node))}"
            while base in used:
                base += "_"
            used.add(base)
            image = os.path.join(outFolder, base + ".nrrd")  # NRRD keeps the exact geometry
            write_image_atomic(bridge.image_from_volume(node), image, overwrite=True)
            jobs.append(
                {
                    "name": bridge.node_name(node),
                    "nodeID": bridge.node_id(node),
                    "role": ORIGINAL_ROLE if index == 0 else "defaced",
                    "image": image,
                    "png": os.path.join(outFolder, base + ".png"),
                }
            )
        manifest, answer = os.path.join(outFolder, "score-jobs.json"), os.path.join(outFolder, "score-results.json")
        with open(manifest, "w", encoding="utf-8") as handle:
            json.dump({"size": int(size or self.size), "jobs": jobs, "check": bool(check)}, handle)
        if os.path.exists(answer):
            os.remove(answer)
        process = DefaceProcess(
            [sys.executable, "-m", "CTADefaceEvalLib.slicer_logic", manifest, answer], env=self.childEnvironment()
        ).start()
        try:
            process.wait(timeout)
        finally:
            process.cancel()
            for job in jobs:
                if os.path.exists(job["image"]):
                    os.remove(job["image"])
        message = process.error_message()
        if message:
            raise DefaceError(message.replace("The defacing process", "Rendering and scoring"))
        with open(answer, encoding="utf-8") as handle:
            return json.load(handle)

    # ------------------------------------------------------------------ cohort
    @staticmethod
    def compareCohortCommand(
        originals: str,
        methods: dict,
        outdir: str,
        *,
        truth: str | None = None,
        size: int | None = None,
        python: str | None = None,
    ) -> list[str]:
        """argv of `ctadeface eval compare` for an originals folder and {method name: folder}."""
        from CTADefaceLib.errors import DefaceError

        if not originals:
            raise DefaceError("Choose the folder of original (undefaced) images.")
        if not methods:
            raise DefaceError("Add at least one method folder (name = folder of defaced images).")
        if not outdir:
            raise DefaceError("Choose an output folder for the report.")
        argv = [python or sys.executable, "-m", "CTADefaceLib.cli", "eval", "compare", "--originals", str(originals)]
        for name, folder in methods.items():
            name = str(name).strip()
            if not name or "=" in name or name == ORIGINAL_ROLE:
                raise DefaceError(
                    f"'{name}' cannot name a method: use a non-empty name without '=' other than '{ORIGINAL_ROLE}'."
                )
            if not folder:
                raise DefaceError(f"The method '{name}' has no folder.")
            argv += ["--method", f"{name}={folder}"]
        argv += ["-o", str(outdir)]
        if truth:
            argv += ["--truth", str(truth)]
        if size:
            argv += ["--size", str(int(size))]
        return argv

    @staticmethod
    def childEnvironment(base: dict | None = None) -> dict:
        """The child's environment (slicer/child_process.py) with CTADefaceEvalLib's folder on PYTHONPATH too."""
        return child_environment(base, library_folders=(EVAL_LIBRARY_PARENT,))

    def startCompare(self, originals: str, methods: dict, outdir: str, **options) -> CompareProcess:
        """Start the comparison in a child process; poll() it from a timer, cancel() to stop it."""
        argv = self.compareCohortCommand(originals, methods, outdir, **options)
        process = CompareProcess(argv, env=self.childEnvironment())
        process.reportPath = self.reportPath(outdir)
        return process.start()

    @staticmethod
    def reportPath(outdir: str) -> str:
        return os.path.join(outdir, REPORT_FILE)


class CompareProcess(DefaceProcess):
    """DefaceProcess with progress from the "[i/n] case" lines and its own wording."""

    reportPath = None

    def poll(self):
        new = super().poll()
        for line in new:
            match = _CASE_PROGRESS.match(line.strip())
            if match and int(match.group(2)) > 0:
                self.progress = (int(match.group(1)) - 1) / int(match.group(2))
        if self.finished and self.returncode == 0:
            self.progress = 1.0
        return new

    def error_message(self):
        if self.cancelled:
            return "The comparison was cancelled."
        message = super().error_message()
        return message.replace("The defacing process", "The comparison") if message else None


# ------------------------------------------------------------------------------------ the scoring child
def score_jobs(manifest: str, answer: str) -> None:
    """In the child: score the images `scoreVolumes` wrote, save the pictures, write the results as JSON."""
    import json

    from . import render

    render.import_torch_before_vtk()  # first, before anything here can render
    from CTADefaceLib.io.volume import read_image

    from .cohort import score_image

    with open(manifest, encoding="utf-8") as handle:
        data = json.load(handle)
    results, reference, original, frame, seen = [], None, None, None, None
    for index, job in enumerate(data["jobs"]):
        image = read_image(job["image"])
        scored = score_image(image, reference, size=data["size"])
        if index == 0:
            reference = scored["embedding"]
            distance = 0.0 if reference is not None else None
        else:
            distance = scored["embedding_distance"]  # None when this picture (or the original) has no face
        png = render.save_png(draw_box(scored["picture"], scored["box"]), job["png"])
        box = None if scored["box"] is None else [float(v) for v in scored["box"]]
        results.append(
            {
                "name": job["name"],
                "nodeID": job["nodeID"],
                "role": job["role"],
                "probability": float(scored["face_probability"]),
                "box": box,
                "distance": None if distance is None else float(distance),
                "png": png,
                "render_s": scored["render_s"],
            }
        )
        if index == 0:
            original = image
        elif data.get("check"):
            results[-1].update(check_job(image, original, job, frame=frame, seen=seen))
            frame, seen = results[-1].pop("frame"), results[-1].pop("seen")
        print(f"[{index + 1}/{len(data['jobs'])}] " + caption(results[-1]).replace("\n", ": "), flush=True)
    partial = answer + ".partial"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(results, handle)
    os.replace(partial, answer)


def check_job(defaced, original, job: dict, *, frame=None, seen=None) -> dict:
    """The check of one defaced volume against the original, with its figure next to the job's picture. The face
    frame and the original's views and findings ("frame", "seen") are found for the first volume and passed back
    for the next ones, so the original is rendered and searched once."""
    from .figure import save_check_figure
    from .verdict import check_case

    result = check_case(defaced, original, frame=frame, seen_original=seen)
    png = job["png"][:-4] + "_check.png"
    save_check_figure([(job["name"], result)], png)
    return {
        "check": result.verdict,
        "reasons": result.reasons,
        "check_png": png,
        "frame": result.frame,
        "seen": (result.original_views, result.original_findings),
    }


if __name__ == "__main__":
    score_jobs(sys.argv[1], sys.argv[2])
