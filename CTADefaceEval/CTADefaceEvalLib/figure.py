"""One PNG of a check: each case's views side by side, with the detections (boxes) and landmarks drawn, and the
verdict and its reasons above them. Used by `ctadeface eval check --figure`, `ctadeface eval calibrate --figure`
(the README's figure) and the CTADefaceEval Slicer module."""

from __future__ import annotations

import textwrap

COLORS = ("#ff3030", "#30c0ff", "#ffd030", "#60ff60")  # one per detector, in order of appearance


def _row(title: str, verdict: str, reasons: list, views: list, findings: dict) -> dict:
    return {"title": title, "verdict": verdict, "reasons": list(reasons), "views": views, "findings": findings}


def rows_from_results(cases) -> list[dict]:
    """[(title, verdict.CheckResult)] -> figure rows."""
    return [_row(title, r.verdict, r.reasons + r.notes, r.views, r.findings) for title, r in cases]


def save_rows(rows: list[dict], path: str, *, tile_inches: float = 1.6, dpi: int = 90, columns: int = 7) -> str:
    """Write the grid atomically (a temporary name, then renamed) and return `path`. A case's views wrap after
    `columns` pictures."""
    import os

    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import pyplot as plt
    from matplotlib.patches import Rectangle

    from .verdict import view_label

    columns = max(1, min(columns, max(len(r["views"]) for r in rows)))
    text_lines = [min(8, 1 + sum(len(textwrap.wrap(x, 150)) for x in r["reasons"])) for r in rows]
    picture_rows = [max(1, -(-len(r["views"]) // columns)) for r in rows]
    heights, first_line = [], []  # per case: its verdict and reasons, then its pictures
    for lines, count in zip(text_lines, picture_rows):
        heights.append(0.16 * (lines + 1))
        first_line.append(len(heights))
        heights += [tile_inches] * count
    figure = plt.figure(figsize=(columns * tile_inches, sum(heights) + 0.2))
    grid = figure.add_gridspec(len(heights), columns, height_ratios=heights, hspace=0.25, wspace=0.03)
    detector_color: dict = {}
    for i, row in enumerate(rows):
        for j, view in enumerate(row["views"]):
            ax = figure.add_subplot(grid[first_line[i] + j // columns, j % columns])
            ax.imshow(view.rgb)
            ax.set_xticks([])
            ax.set_yticks([])
            label = view_label(view)
            ax.set_title(label, fontsize=6, pad=2)
            for f in row["findings"].get(label, []):
                color = detector_color.setdefault(f.detector, COLORS[len(detector_color) % len(COLORS)])
                if f.box is not None:
                    x1, y1, x2, y2 = (float(v) for v in f.box)
                    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=1))
                    ax.text(x1, y1, f"{f.detector} {f.probability:.2f}", color=color, fontsize=4, va="bottom")
                for x, y in (f.landmarks or {}).values():
                    ax.plot([x], [y], marker="+", color=color, markersize=3, linewidth=0)
        text = figure.add_subplot(grid[first_line[i] - 1, :])
        text.axis("off")
        reasons = row["reasons"] or ["no face in any view, no tissue left above the limits"]
        wrapped = [w for r in reasons for w in textwrap.wrap("- " + r, 150)][: text_lines[i] - 1]
        color = "#b00000" if row["verdict"] == "REVIEW" else "#006000"
        text.text(0, 1, f"{row['title']}: {row['verdict']}", fontsize=7, fontweight="bold", color=color, va="top")
        text.text(0, 0.72, "\n".join(wrapped), fontsize=5.5, va="top", family="monospace")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    partial = os.path.join(folder, f".{os.path.basename(path)}.partial.png")
    figure.savefig(partial, dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    os.replace(partial, path)
    return path


def save_check_figure(cases, path: str, **options) -> str:
    """[(title, CheckResult)] -> one PNG at `path`."""
    return save_rows(rows_from_results(cases), path, **options)


#: The pose the README's figure shows when the calibration has it: the head-holder pose common in CTA (15 degrees chin down, 8 roll).
FIGURE_POSE = "chin down 15 + roll 8"


def save_calibration_figure(cases, thresholds: dict, path: str, **options) -> str:
    """The README's figure (calibration_rows) as one PNG at `path`."""
    return save_rows(calibration_rows(cases, thresholds), path, **options)


def calibration_rows(cases, thresholds: dict) -> list[dict]:
    """For the first phantom in FIGURE_POSE (else the first phantom): the undefaced case, the full-mask case and one
    partial-mask case (nose left if present), with the verdicts and reasons the calibrated thresholds give."""
    from .calibrate import UNDEFACED, case_verdict

    shown = next((c for c in cases if c.pose == FIGURE_POSE), cases[0])
    first = [c for c in cases if (c.seed, c.pose) == (shown.seed, shown.pose)]
    undefaced = [c for c in first if c.mask == UNDEFACED]
    full = next(c for c in first if c.mask == "full")
    partial = next(
        (c for c in first if c.mask == "nose_left"), next(c for c in first if c.mask not in ("full", UNDEFACED))
    )
    rows = []
    for case in undefaced + [full, partial]:
        verdict, reasons = case_verdict(case, thresholds)
        what = "undefaced" if case.mask == UNDEFACED else f"{case.mask.replace('_', ' ')} mask"
        title = f"phantom seed {case.seed}, {case.pose}, {what}"
        rows.append(_row(title, verdict, reasons, case.views, case.findings))
    return rows
