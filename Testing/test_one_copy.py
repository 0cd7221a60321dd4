"""One copy of each helper and constant: a module that needs the body threshold, the largest connected component,
a file's sha256 or a safe file name imports it from its one home instead of defining its own."""

import ast
import os

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARIES = [os.path.join(REPO, "CTADeface"), os.path.join(REPO, "CTADefaceEval")]

#: name -> the one file (relative to the repository) that defines it.
HOMES = {
    "BODY_HU": "CTADeface/CTADefaceLib/mask.py",
    "largest_component": "CTADeface/CTADefaceLib/mask.py",
    "largest_body": "CTADeface/CTADefaceLib/mask.py",
    "file_sha256": "CTADeface/CTADefaceLib/hashing.py",
    "safe_file_name": "CTADeface/CTADefaceLib/io/names.py",
    "mask_volume_ml": "CTADeface/CTADefaceLib/mask.py",
    "child_environment": "CTADeface/CTADefaceLib/slicer/child_process.py",
}
#: Copies left in the libraries (none now); a new one must import the helper from its home instead.
KNOWN_COPIES: set = set()


def definitions(path):
    """Module-level names `path` defines: functions, classes and assigned names."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


#: The tests' shared helpers (Testing/helpers.py, Testing/builders.py), by the same rule.
TEST_HOMES = {
    "sha256": "Testing/helpers.py",
    "tree_hashes": "Testing/helpers.py",
    "make_ct": "Testing/builders.py",
    "make_synthetic_head": "Testing/builders.py",
}
#: Copies left in the tests (none now); a new one must import helpers.tree_hashes instead.
KNOWN_TEST_COPIES: set = set()


def copies(folders=LIBRARIES, homes=HOMES):
    found = set()
    for library in folders:
        for dirpath, _, filenames in os.walk(library):
            for name in filenames:
                if name.endswith(".py"):
                    path = os.path.join(dirpath, name)
                    relative = os.path.relpath(path, REPO).replace(os.sep, "/")
                    found |= {(n, relative) for n in definitions(path) & set(homes) if homes[n] != relative}
    return found


def test_each_helper_is_defined_only_in_its_home():
    assert copies() - KNOWN_COPIES == set()
    for name, home in HOMES.items():
        assert name in definitions(os.path.join(REPO, home)), f"{name} is no longer in {home}"


def test_the_known_copies_list_only_shrinks():
    """A copy removed from its module must leave KNOWN_COPIES too, so the list says what is left to do."""
    assert KNOWN_COPIES - copies() == set()


def test_each_test_helper_is_defined_only_in_its_home():
    testing = [os.path.join(REPO, "Testing")]
    assert copies(testing, TEST_HOMES) - KNOWN_TEST_COPIES == set()
    assert KNOWN_TEST_COPIES - copies(testing, TEST_HOMES) == set()  # the list may only shrink
    for name, home in TEST_HOMES.items():
        assert name in definitions(os.path.join(REPO, home)), f"{name} is no longer in {home}"


def test_largest_body_drops_the_table_and_the_air():
    from CTADefaceLib.mask import BODY_HU, largest_body

    ct = np.full((20, 30, 30), -1000.0)
    ct[4:16, 5:25, 5:25] = 40.0  # the patient
    ct[18:20, :, :] = 200.0  # the table, apart from the patient
    ct[2, 2, 2] = BODY_HU + 1  # a speck of noise
    body = largest_body(ct)
    assert body.sum() == 12 * 20 * 20 and body[4:16, 5:25, 5:25].all()
