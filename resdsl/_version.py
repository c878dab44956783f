"""The package version, read by hatch at build time and by anything that reports it."""

__version__ = "0.1.0"
