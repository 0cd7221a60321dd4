#!/usr/bin/env bash
# Regenerates CTADeface/CTADefaceLib/data/resolver-hints-py39.txt: known-good versions of nnunetv2's requirements
# for Python 3.9 (Slicer 5.8), resolved by uv under Slicer 5.8's own numpy/scipy/requests/SimpleITK, wheels only
# for the compiled packages (Slicer users have no compiler). pip alone backtracks on Python 3.9 until it gives up.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT
python3 -m venv "$WORK/tools" && "$WORK/tools/bin/pip" install -q uv
PY39="$(PYENV_VERSION="$(pyenv versions --bare | grep -E '^3\.9\.' | tail -1)" pyenv which python)"
"$PY39" -m venv "$WORK/py39" && "$WORK/py39/bin/pip" install -q --no-deps 'nnunetv2>=2.5,<2.9'
"$WORK/py39/bin/python" -c "
import sys; sys.path.insert(0, '$REPO/CTADeface')
from CTADefaceLib.slicer import installer as d
print('\n'.join(d.nnunet_requirements()))" > "$WORK/requirements.in"
grep -E '^(numpy|scipy|requests|SimpleITK)==' "$REPO/Testing/slicer_env/slicer-5.8.txt" | sed 's/ *#.*//' > "$WORK/slicer.txt"
binary=(); for p in python-gdcm kiwisolver imagecodecs scikit-image pandas matplotlib contourpy pillow scikit-learn; do binary+=(--only-binary "$p"); done
"$WORK/tools/bin/uv" pip compile -q --python-version 3.9 --python-platform x86_64-manylinux_2_28 "${binary[@]}" \
  -c "$WORK/slicer.txt" "$WORK/requirements.in" -o "$WORK/lock.txt"
OUT="$REPO/CTADeface/CTADefaceLib/data/resolver-hints-py39.txt"
{ sed -n '1,5p' "$OUT"
  grep -E '^[a-zA-Z]' "$WORK/lock.txt" | grep -viE '^(nvidia|triton|torch|numpy|scipy|simpleitk|requests|sympy|mpmath|networkx|jinja2|markupsafe|filelock|fsspec|typing-extensions)'
} > "$WORK/hints.txt"
mv "$WORK/hints.txt" "$OUT"
echo "wrote $OUT ($(grep -cv '^#' "$OUT") pins)"
