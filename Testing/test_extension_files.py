"""The Slicer extension's CMake files: metadata present, and every module file listed.

slicerMacroBuildScriptedModule installs only what is listed, so a .py or resource that is not in
its module's CMakeLists.txt works from the source tree but is missing from the built extension.
A file added later without listing it makes this test fail, on purpose.
"""

import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IGNORED_DIRS = {"__pycache__", ".pytest_cache"}
IGNORED_SUFFIXES = (".pyc", ".pyo")


def module_folders():
    return sorted(
        name
        for name in os.listdir(REPO)
        if os.path.isfile(os.path.join(REPO, name, "CMakeLists.txt")) and not name.startswith(".")
    )


def listed_files(cmake_text: str, module: str) -> set:
    """Entries of MODULE_PYTHON_SCRIPTS and MODULE_PYTHON_RESOURCES, with ${MODULE_NAME} expanded."""
    files = set()
    for block in re.findall(r"set\(MODULE_PYTHON_(?:SCRIPTS|RESOURCES)\b(.*?)\)", cmake_text, re.S):
        for token in block.split():
            if not token.startswith("#"):
                files.add(token.replace("${MODULE_NAME}", module))
    return files


def files_on_disk(module: str) -> set:
    root = os.path.join(REPO, module)
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in IGNORED_DIRS and not d.startswith(".")]
        for name in filenames:
            if name == "CMakeLists.txt" or name.startswith(".") or name.endswith(IGNORED_SUFFIXES):
                continue
            found.add(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
    return found


def test_top_level_extension_metadata():
    text = open(os.path.join(REPO, "CMakeLists.txt"), encoding="utf-8").read()
    assert "project(CTADeface)" in text
    for key in (
        "EXTENSION_HOMEPAGE",
        "EXTENSION_CATEGORY",
        "EXTENSION_CONTRIBUTORS",
        "EXTENSION_DESCRIPTION",
        "EXTENSION_ICONURL",
        "EXTENSION_SCREENSHOTURLS",
    ):
        assert re.search(rf"set\({key} \"[^\"]+\"\)", text), key
    assert "set(EXTENSION_DEPENDS PyTorch)" in text
    for line in (
        "find_package(Slicer REQUIRED)",
        "include(${Slicer_USE_FILE})",
        "include(${Slicer_EXTENSION_GENERATE_CONFIG})",
        "include(${Slicer_EXTENSION_CPACK})",
    ):
        assert line in text
    for module in module_folders():
        assert f"add_subdirectory({module})" in text


@pytest.mark.parametrize("module", module_folders())
def test_every_module_file_is_listed_and_every_listed_file_exists(module):
    text = open(os.path.join(REPO, module, "CMakeLists.txt"), encoding="utf-8").read()
    assert "slicerMacroBuildScriptedModule(" in text and "WITH_GENERIC_TESTS" in text
    listed, present = listed_files(text, module), files_on_disk(module)
    assert sorted(present - listed) == [], f"add these to {module}/CMakeLists.txt"
    assert sorted(listed - present) == [], f"{module}/CMakeLists.txt lists files that do not exist"


def test_ctadeface_module_is_built():
    assert "CTADeface" in module_folders()
