"""CTA-DEFACE evaluation: render, detect faces, compare methods. Imports nothing heavy at load."""
