"""The choices of the defacing settings, shared by the command line and the Slicer module's parameter node.

Slicer imports this file when the module loads, with only its bundled packages: standard library only.
"""

DEVICES = ("auto", "cpu", "cuda", "mps")
FILL_POLICIES = ("p10", "air")  # a number (HU) is a valid fill as well
ENGINES = ("nnunet", "box")
