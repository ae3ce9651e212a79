"""The package version (one place; ``v0lite.__version__`` re-exports it)."""

__version__ = "0.1.0"
