"""The test suite: a package, so ``tests.conftest`` is ours even when an installed package ships ``tests``."""
