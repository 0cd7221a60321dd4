#!/usr/bin/env bash
# make test-slicer-full: the first-use installer and the child processes in a Python with Slicer 5.10's own
# package versions, plus a pip dry-run of the installer's plan for Slicer 5.8 (Python 3.9) and 5.10 (3.12).
# torch for Python 3.9/3.12 exists on PyPI only as multi-GB CUDA builds, so the full run uses this machine's
# Python 3.11 with the local CPU torch standing in for what the PyTorch extension installs.
# Wheels are cached under ~/.cache/ctadeface-ci (CTADEFACE_CI_CACHE); the base venv is built once.
set -euo pipefail
# pyenv provides Python 3.9, 3.11 and 3.12 on the project's machines; find it also where no login shell set PATH
export PATH="$HOME/.pyenv/bin:$HOME/.pyenv/shims:$PATH"
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${CTADEFACE_CI_CACHE:-$HOME/.cache/ctadeface-ci}"
PYTHON="${PYTHON311:-python3.11}"
LISTING="$REPO/Testing/slicer_env/slicer-5.10.txt"
PIP=(--disable-pip-version-check -q --cache-dir "$CACHE/pip")
mkdir -p "$CACHE"
SLICER_PINS="$CACHE/slicer-5.10-owned.txt"
if [ -f "$LISTING" ]; then
  grep -E '^(numpy|scipy|requests|SimpleITK|pydicom)==' "$LISTING" | sed 's/ *#.*//' > "$SLICER_PINS"
else
  printf 'numpy==2.0.2\nscipy==1.13.1\nrequests==2.32.3\nSimpleITK==2.5.2\npydicom==2.4.4\n' > "$SLICER_PINS"
fi
BASE="$CACHE/venv-slicer510-base"
if [ ! -f "$BASE/.ready" ] || ! cmp -s "$SLICER_PINS" "$BASE/.ready"; then
  rm -rf "$BASE"
  "$PYTHON" -m venv "$BASE"
  "$BASE/bin/python" -m pip install "${PIP[@]}" -r "$SLICER_PINS" torch==2.13.0
  cp "$SLICER_PINS" "$BASE/.ready"
fi
# A fresh venv per run that sees the base's packages (Slicer's own + torch) through a .pth file: the installer
# starts from nothing of its own every time, and cannot touch the base without the check below noticing.
RUN="$(mktemp -d /tmp/ctadeface-full-run-venv-XXXX)"
trap 'rm -rf "$RUN"' EXIT
"$PYTHON" -m venv "$RUN"
BASE_SITE="$("$BASE/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
RUN_SITE="$("$RUN/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$BASE_SITE" > "$RUN_SITE/slicer-bundled.pth"
export PIP_CACHE_DIR="$CACHE/pip"
start=$(date +%s)
"$RUN/bin/python" "$REPO/Testing/slicer_env/full_run.py" "$SLICER_PINS"
echo "[full-run] installer + children: $(( $(date +%s) - start )) s"

# The same plan for Slicer 5.8 (Python 3.9) and 5.10 (Python 3.12), in venvs on those Pythons (pyenv): the
# installer's first step for real (nnunetv2 --no-deps: pip picks the newest release for that Python, e.g.
# 2.8.x needs Python >= 3.10), then the rest of its plan as a dry run, under constraints pinning Slicer's packages
# and a torch the PyTorch extension installs (only metadata is downloaded).
for tag in 5.8:3.9 5.10:3.12; do
  slicer="${tag%%:*}"; py="${tag##*:}"
  constraints="$CACHE/constraints-$slicer.txt"
  listing="$REPO/Testing/slicer_env/slicer-$slicer.txt"
  if [ -f "$listing" ]; then
    grep -E '^(numpy|scipy|requests|SimpleITK)==' "$listing" | sed 's/ *#.*//' > "$constraints"
  elif [ "$slicer" = 5.8 ]; then
    printf 'numpy==1.26.4\nscipy==1.13.1\nrequests==2.32.3\nSimpleITK==2.3.1\n' > "$constraints"
  else
    printf 'numpy==2.0.2\nscipy==1.13.1\nrequests==2.32.3\nSimpleITK==2.5.2\n' > "$constraints"
  fi
  echo "torch==2.6.0" >> "$constraints"
  pyexe="$(PYENV_VERSION="$(pyenv versions --bare | grep -E "^$py\." | tail -1)" pyenv which python)"
  V="$RUN/py$py"
  "$pyexe" -m venv "$V"
  # the installer's own resolver hints for that Python (Python 3.9 needs them: CTADefaceLib/slicer/installer.py)
  "$pyexe" -c "import sys; sys.path.insert(0, '$REPO/CTADeface'); from CTADefaceLib.slicer import installer as d; print('\n'.join(d.resolver_hints()))" >> "$constraints"
  "$V/bin/python" -m pip install "${PIP[@]}" --upgrade pip  # a pip that reads wheel metadata without the wheel
  "$V/bin/python" -m pip install "${PIP[@]}" --no-deps "$("$V/bin/python" -c "import sys; sys.path.insert(0, '$REPO/CTADeface'); from CTADefaceLib.slicer.installer import NNUNET_REQUIREMENT as r; print(r)")"
  REQS="$("$V/bin/python" -c "import sys; sys.path.insert(0, '$REPO/CTADeface'); from CTADefaceLib.slicer import installer as d; print(' '.join(d.nnunet_requirements()))")"
  # shellcheck disable=SC2086
  "$V/bin/python" -m pip install --dry-run --disable-pip-version-check --cache-dir "$CACHE/pip" --prefer-binary \
    -c "$constraints" \
    $REQS > "$CACHE/dry-run-$slicer.log"
  echo "[full-run] Slicer $slicer (Python $py, nnunetv2 $("$V/bin/python" -c 'from importlib.metadata import version; print(version("nnunetv2"))')): the plan resolves: $(grep '^Would install' "$CACHE/dry-run-$slicer.log" | cut -c1-300)"
done
echo "[full-run] total: $(( $(date +%s) - start )) s"
