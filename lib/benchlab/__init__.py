"""benchlab: one benchmark suite over five reproduced ML experiment systems."""

__version__ = "0.1.0"
