"""Make `slicer.util` work under slicer-core (no Slicer application): see docs/facts.md.

slicer-core has MRML and the Qt-free module logics but sets no `slicer.mrmlScene` and no
`slicer.modules`; this wires a scene and the logics that slicer.util needs, once per process.
"""

import types

_STATE = {}


def bootstrap():
    """Return the process-wide MRML scene, creating it on the first call."""
    if "scene" in _STATE:
        return _STATE["scene"]
    import slicer

    scene = slicer.vtkMRMLScene()
    app = slicer.vtkSlicerApplicationLogic()
    app.SetMRMLScene(scene)
    app.GetColorLogic().SetMRMLScene(scene)
    app.GetColorLogic().AddDefaultColorNodes()

    def register(logic, name):
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(app)
        app.SetModuleLogic(name, logic)
        return logic

    register(app.GetColorLogic(), "Colors")
    volumes = register(slicer.vtkSlicerVolumesLogic(), "Volumes")
    segmentations = register(slicer.vtkSlicerSegmentationsModuleLogic(), "Segmentations")
    slicer.mrmlScene = scene
    slicer.modules = types.SimpleNamespace(
        volumes=types.SimpleNamespace(logic=lambda: volumes),
        segmentations=types.SimpleNamespace(logic=lambda: segmentations),
    )
    _STATE.update(scene=scene, app=app)
    return scene
