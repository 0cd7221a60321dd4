"""TEST STAND-INS for what only the Slicer application provides (qt, ScriptedLoadableModule).

`PRELUDE` is Python source run at the top of a fresh interpreter before a module file is imported;
`qt` members beyond QTimer are added by the test that needs them. Everything else (slicer, MRML,
vtk) is the real slicer-core.
"""

PRELUDE = r'''
import sys, types
# --- TEST STAND-INS for what only the Slicer application provides ---
qt = types.ModuleType("qt"); qt.QTimer = object; sys.modules["qt"] = qt
class _Base:
    def __init__(self, *args, **kwargs):
        pass
slm = types.ModuleType("slicer.ScriptedLoadableModule")
for name in ("ScriptedLoadableModule", "ScriptedLoadableModuleWidget", "ScriptedLoadableModuleLogic",
             "ScriptedLoadableModuleTest"):
    setattr(slm, name, type(name, (_Base,), {}))
sys.modules["slicer.ScriptedLoadableModule"] = slm
# --- end of stand-ins ---
import slicer
slicer.ScriptedLoadableModule = slm
'''
