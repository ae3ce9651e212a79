"""Subcommands of the ``v0lite`` CLI; each module has ``register(subparsers)``."""

MODULES = ("core", "data", "route", "alloc", "embed", "serve", "onboard")
