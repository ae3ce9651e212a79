"""The test suite (a package, so ``tests.conftest`` is ours even when another installed package ships a top-level ``tests``)."""
