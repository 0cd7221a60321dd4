"""Slicer glue: the MRML bridge, the module logic, the child process that runs the pipeline, the first-use installer,
and the base class of both module widgets."""
