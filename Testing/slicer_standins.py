"""TEST STAND-INS for what only the Slicer application provides (qt, ScriptedLoadableModule).

`PRELUDE` is Python source run at the top of a fresh interpreter before a module file is imported;
`qt` members beyond QTimer are added by the test that needs them. Everything else (slicer, MRML,
vtk) is the real slicer-core, except slicer.parameterNodeWrapper (slicer-core lacks it: it needs Qt), which
is the rule-enforcing stand-in of Testing/slicer_env/standins.py.
"""

import os

SLICER_ENV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slicer_env")

PRELUDE = (
    r"""
import sys, types
# --- TEST STAND-INS for what only the Slicer application provides ---
qt = types.ModuleType("qt"); qt.QTimer = object; sys.modules["qt"] = qt
class _Base:
    def __init__(self, *args, **kwargs):
        pass
slm = types.ModuleType("slicer.ScriptedLoadableModule")
for name in ("ScriptedLoadableModule", "ScriptedLoadableModuleWidget", "ScriptedLoadableModuleLogic"):
    setattr(slm, name, type(name, (_Base,), {}))
import unittest
class ScriptedLoadableModuleTest(unittest.TestCase):  # Slicer's is a unittest.TestCase with delayDisplay
    def __init__(self, *args, **kwargs):
        unittest.TestCase.__init__(self, "runTest")
    def delayDisplay(self, message, msec=None):
        print(message, flush=True)
slm.ScriptedLoadableModuleTest = ScriptedLoadableModuleTest
sys.modules["slicer.ScriptedLoadableModule"] = slm
# --- end of stand-ins ---
import slicer
slicer.ScriptedLoadableModule = slm
sys.path.insert(0, """
    + repr(SLICER_ENV)
    + r""")
import standins
slicer.parameterNodeWrapper = standins._parameter_node_wrapper_module("5.10")
sys.modules["slicer.parameterNodeWrapper"] = slicer.parameterNodeWrapper
"""
)
