"""The nnU-Net engine: the model run, the face region it plans, and the tiled predictor that reuses its windows."""

#: Set in the environment of the child process that the Slicer module runs: the tiled predictor then prints one
#: tqdm-style "NN%|" line per tile on stderr, so the module's progress bar moves while the model runs.
PROGRESS_ENV = "CTADEFACE_PROGRESS_LINES"
