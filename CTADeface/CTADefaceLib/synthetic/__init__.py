"""Synthetic data for tests, demos and benchmarks: phantom heads and random-weight nnU-Net models."""
