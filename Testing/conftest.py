"""Shared test set-up: import the libraries from this checkout, whatever is installed."""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("CTADeface", "CTADefaceEval"):
    path = os.path.join(REPO, sub)
    if path not in sys.path:
        sys.path.insert(0, path)
