"""Models are data: nnU-Net v2 results folders described by a registry, installed into a per-user cache."""
