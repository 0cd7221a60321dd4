"""CTA-DEFACE core: face removal for head CT angiography, independent of 3D Slicer.

Nothing heavy is imported here: SimpleITK, torch and nnU-Net are imported by the
modules that need them, on first use, so that Slicer can load the module instantly.
"""

__version__ = "0.1.0"
