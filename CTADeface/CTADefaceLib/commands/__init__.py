"""Subcommands of `ctadeface`; each module has `register(subparsers)`. Keep imports light."""
