"""The end of a run's report, one copy for both front doors that run batches: `ctadeface deface` (print_summary)
and Slicer's batch script (Scripts/deface_batch.py) print the same counts line and exit with the same status."""

import ast
import os

from CTADefaceLib.commands.deface import REVIEW_STATUS, exit_status, print_summary, summary_line

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "CTADeface", "Scripts", "deface_batch.py")


def record(status, check=None):
    line = {"input": f"/in/{status}.nii.gz", "status": status, "message": "" if status == "done" else "why"}
    if status == "done":
        line.update(outputs={"defaced": "/out/x_defaced.nii.gz"}, mask_volume_ml=250.0, seconds=1.0)
    if check:
        line.update(check=check, check_reasons=["region nose: soft tissue left"] if check == "REVIEW" else [])
    return line


def test_counts_line_and_exit_status():
    report = [record("done", "PASS"), record("done", "REVIEW"), record("skipped")]
    assert summary_line(report) == "2 defaced, 1 skipped, 0 failed, 1 to REVIEW (a face may still be recognisable)"
    assert exit_status(report) == REVIEW_STATUS == 3
    assert exit_status(report + [record("failed")]) == 1  # a failure outranks a REVIEW
    assert exit_status([record("done", "PASS"), record("skipped")]) == 0
    assert summary_line([]) == "0 defaced, 0 skipped, 0 failed" and exit_status([]) == 0


def test_print_summary_ends_with_the_counts_line(capsys):
    report = [record("done", "REVIEW"), record("failed")]
    assert print_summary(report) == 1
    assert capsys.readouterr().out.splitlines()[-1] == summary_line(report)


def test_the_batch_script_counts_nothing_itself():
    """The batch script prints summary_line and returns exit_status: no count or status rule of its own."""
    tree = ast.parse(open(SCRIPT, encoding="utf-8").read())
    main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
    called = {n.func.id for n in ast.walk(main) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert {"summary_line", "exit_status"} <= called
    assert "sum" not in called
    # no "1 if failed else 3 if review else 0" of its own (argparse's exit code is passed on as it is)
    returned = [n.value for n in ast.walk(main) if isinstance(n, ast.Return) and n.value is not None]
    names = {n.id for value in returned for n in ast.walk(value) if isinstance(n, ast.Name)}
    assert not names & {"failed", "review"}, [ast.unparse(v) for v in returned]
