"""Write a cohort comparison to a folder: CSV, JSON, the paper-style figures and one self-contained HTML page.

cases.csv          one row per case and method (probability, distance, Dice, runtime, ...)
summary.json       every statistic (stats.cohort_statistics)
detection.png      Fig. 3 style: boxplots of MTCNN probabilities of detected faces, n detected per method
distance.png       Fig. 4 style: boxplots of FaceNet distances to the original, paired t p-value
check              (when the check ran) per method: PASS / REVIEW / cannot verify counts (check_summary)
identity.txt       (when identity figures are given) rank-1 rates and pair AUCs per method, next to the
                   paper's and the literature's figures (identity.identity_lines)
report.html        all of the above with the renders embedded as base64 PNG (one file to send around)
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os

COLUMNS = (
    "case",
    "method",
    "face_probability",
    "embedding_distance",
    "check",
    "dice",
    "ssd_mean_mm",
    "ssd_hd95_mm",
    "mask_volume_ml",
    "changed_outside_mask",
    "changed_in_intracranial",
    "changed_in_arteries",
    "runtime_s",
    "render_s",
    "check_reasons",
    "render",
)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def write_csv(rows: list[dict], path: str) -> str:
    extra = sorted({k for row in rows for k in row} - set(COLUMNS))
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS) + extra, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in writer.fieldnames})
    return path


def check_summary(rows: list[dict], methods: list[str]) -> dict:
    """Per method with a check: {"n", "pass", "review", "cannot_verify"}; {} when no row carries a check."""
    out = {}
    for m in methods:
        checked = [r for r in rows if r["method"] == m and r.get("check")]
        if checked:
            out[m] = {
                "n": len(checked),
                "pass": sum(r["check"] == "PASS" for r in checked),
                "review": sum(r["check"] == "REVIEW" for r in checked),
                "cannot_verify": sum("cannot verify" in (r.get("check_reasons") or "") for r in checked),
            }
    return out


def check_lines(summary: dict) -> list[str]:
    """The check's counts as text lines (stdout of `eval compare`, the HTML)."""
    if not summary.get("check"):
        return []
    lines = [
        "Re-identification check (views around the face's front, detectors, residual tissue; the original is "
        "searched first: no face found there gives REVIEW, cannot verify):"
    ]
    for m, c in summary["check"].items():
        lines.append(
            f"  {m:12s} PASS {c['pass']}/{c['n']}, REVIEW {c['review']}/{c['n']} "
            f"(of which cannot verify: {c['cannot_verify']})"
        )
    return lines


def detection_lines(summary: dict, methods: list[str]) -> list[str]:
    """MTCNN detections per method with their 95% interval, for stdout next to the published figures."""
    lines = [f"MTCNN face detection (probability > {summary['threshold']:g}), the paper's measure:"]
    for m in methods:
        d = summary["detections"][m]
        ci = "" if d["ci_low"] is None else f", 95% CI {100 * d['ci_low']:.0f}-{100 * d['ci_high']:.0f}%"
        rate = "-" if d["rate"] is None else f"{100 * d['rate']:.0f}%"
        lines.append(f"  {m:12s} {d['detected']}/{d['n']} ({rate}{ci})")
    lines.append("  paper (50 CTAs): original 84% (71-93%), after ICHSEG 74% (60-85%), after CTA-DEFACE 62% (47-75%)")
    return lines


def _p_text(p) -> str:
    if p is None:
        return "n/a"
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.4f}"


def detection_figure(rows, summary, methods, path: str) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(methods), 4.2))
    data = [
        [
            r["face_probability"]
            for r in rows
            if r["method"] == m and (r.get("face_probability") or 0) > summary["threshold"]
        ]
        for m in methods
    ]
    ax.boxplot([d if d else [float("nan")] for d in data], showfliers=True)
    ax.set_xticks(range(1, len(methods) + 1), methods)
    for i, m in enumerate(methods, start=1):
        det = summary["detections"][m]
        ax.annotate(f"{det['detected']}/{det['n']}", (i, 1.005), ha="center", va="bottom", fontsize=9)
    ax.set_ylim(min([0.5] + [min(d) - 0.02 for d in data if d]), 1.04)
    ax.set_ylabel("MTCNN face detection probability")
    ax.set_title(f"Detected faces (undetected excluded); Friedman {_p_text(summary['friedman']['p'])}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def distance_figure(rows, summary, methods, path: str) -> str:
    plt = _pyplot()
    defacers = [m for m in methods if m in summary["distance"]]
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * max(1, len(defacers)), 4.2))
    data = [
        [r["embedding_distance"] for r in rows if r["method"] == m and r.get("embedding_distance") is not None]
        for m in defacers
    ]
    ax.boxplot([d if d else [float("nan")] for d in data])
    ax.set_xticks(range(1, len(defacers) + 1), defacers)
    ax.set_ylabel("FaceNet embedding distance to the original")
    tests = summary.get("paired_t_distance") or []
    label = "; ".join(f"{t['a']} vs {t['b']}: paired t {_p_text(t['p'])} (n={t['n']})" for t in tests) or "no pair"
    ax.set_title(label, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _img_tag(path: str, width: int | None = None, alt: str = "") -> str:
    if not path or not os.path.isfile(path):
        return "<span>(no picture)</span>"
    with open(path, "rb") as handle:
        data = base64.b64encode(handle.read()).decode("ascii")
    size = f' width="{width}"' if width else ""
    return f'<img alt="{html.escape(alt)}"{size} src="data:image/png;base64,{data}">'


def _fmt(value) -> str:
    if value is None or value == "":
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def identity_html(identity: dict) -> str:
    """The identity section: the same lines as identity.txt, in a <pre> block."""
    from .identity import identity_lines

    return (
        "<h2>Identity (rank-1 and AUC, FaceNet)</h2><pre>" + html.escape("\n".join(identity_lines(identity))) + "</pre>"
    )


def write_html(rows, summary, methods, figures: dict, path: str, title: str = "CTA-DEFACE evaluation") -> str:
    out = io.StringIO()
    out.write(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}</style></head><body>"
    )
    out.write(
        f"<h1>{html.escape(title)}</h1><p>{summary['cases']} cases; methods: {html.escape(', '.join(methods))}. "
        "Pictures: anterior CT-Muscle volume renderings; faces: MTCNN (probability, 0 = none); "
        "identity: FaceNet embedding distance to the original's render.</p>"
    )
    out.write(
        "<h2>Face detection</h2><table><tr><th>method</th><th>detected</th><th>rate</th>"
        "<th>95% CI (Clopper-Pearson)</th>"
        "<th>mean probability</th></tr>"
    )
    for m in methods:
        d, p = summary["detections"][m], summary["probability"][m]
        ci = "&ndash;" if d["ci_low"] is None else f"{100 * d['ci_low']:.0f}&ndash;{100 * d['ci_high']:.0f}%"
        rate = "&ndash;" if d["rate"] is None else f"{100 * d['rate']:.0f}%"
        out.write(
            f"<tr><td>{html.escape(m)}</td><td>{d['detected']}/{d['n']}</td><td>{rate}</td><td>{ci}</td>"
            f"<td>{_fmt(p['mean'])}</td></tr>"
        )
    f = summary["friedman"]
    out.write(f"</table><p>Friedman: &chi;&sup2; = {_fmt(f['statistic'])}, {_p_text(f['p'])} (n = {f['n']}).</p>")
    out.write("<table><tr><th>pair</th><th>Wilcoxon W</th><th>p</th><th>p (Bonferroni)</th><th>n</th></tr>")
    for w in summary["wilcoxon"]:
        out.write(
            f"<tr><td>{html.escape(w['a'])} vs {html.escape(w['b'])}</td><td>{_fmt(w['statistic'])}</td>"
            f"<td>{_fmt(w['p'])}</td><td>{_fmt(w['p_bonferroni'])}</td><td>{w['n']}</td></tr>"
        )
    out.write("</table>")
    if summary.get("check"):
        out.write("<h2>Re-identification check</h2><pre>" + html.escape("\n".join(check_lines(summary))) + "</pre>")
    if summary.get("identity"):
        out.write(identity_html(summary["identity"]))
    for name, fig in figures.items():
        out.write(f"<h3>{html.escape(name)}</h3>{_img_tag(fig, alt=name)}")
    out.write("<h2>Per case</h2><table><tr>" + "".join(f"<th>{c}</th>" for c in COLUMNS if c != "render") + "</tr>")
    for row in rows:
        out.write("<tr>" + "".join(f"<td>{_fmt(row.get(c))}</td>" for c in COLUMNS if c != "render") + "</tr>")
    out.write(
        "</table><h2>Renders</h2><table><tr><th>case</th>"
        + "".join(f"<th>{html.escape(m)}</th>" for m in methods)
        + "</tr>"
    )
    by_key = {(r["case"], r["method"]): r for r in rows}
    for case in sorted({r["case"] for r in rows}):
        out.write(f"<tr><td>{html.escape(case)}</td>")
        for m in methods:
            r = by_key.get((case, m), {})
            caption = "N/A" if not r.get("face_probability") else f"p = {r['face_probability']:.3f}"
            out.write(f"<td>{_img_tag(r.get('render'), 200, f'{case} {m}')}<br>{caption}</td>")
        out.write("</tr>")
    out.write("</table></body></html>\n")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(out.getvalue())
    return path


def write_report(
    rows: list[dict],
    methods: list[str],
    outdir: str,
    original: str = "original",
    threshold: float | None = None,
    title: str = "CTA-DEFACE evaluation",
    identity: dict | None = None,
) -> dict:
    """Compute the statistics and write every file; returns {name: path} plus the summary under 'summary'.

    `identity` is identity.cohort_identity's result: it goes into summary.json, identity.txt and the HTML."""
    from .stats import DETECTION_THRESHOLD, cohort_statistics

    os.makedirs(outdir, exist_ok=True)
    summary = cohort_statistics(rows, methods, original, DETECTION_THRESHOLD if threshold is None else threshold)
    checked = check_summary(rows, methods)
    if checked:
        summary["check"] = checked
    files = {"csv": write_csv(rows, os.path.join(outdir, "cases.csv"))}
    if identity is not None:
        from .identity import identity_lines

        summary["identity"] = identity
        files["identity_txt"] = os.path.join(outdir, "identity.txt")
        with open(files["identity_txt"], "w", encoding="utf-8") as handle:
            handle.write("\n".join(identity_lines(identity)) + "\n")
    with open(os.path.join(outdir, "summary.json"), "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2)
    files["json"] = os.path.join(outdir, "summary.json")
    files["detection_png"] = detection_figure(rows, summary, methods, os.path.join(outdir, "detection.png"))
    files["distance_png"] = distance_figure(rows, summary, methods, os.path.join(outdir, "distance.png"))
    figures = {
        "Face detection probabilities (Fig. 3 style)": files["detection_png"],
        "FaceNet distance to the original (Fig. 4 style)": files["distance_png"],
    }
    files["html"] = write_html(rows, summary, methods, figures, os.path.join(outdir, "report.html"), title)
    files["summary"] = summary
    return files
