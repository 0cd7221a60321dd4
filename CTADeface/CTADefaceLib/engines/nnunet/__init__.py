"""The nnU-Net engine: the model run, the face region it plans, and the tiled predictor that reuses its windows."""
