"""A sentence encoder that embeds the end of long prompts."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..exceptions import V0liteError

__all__ = ["TailEncoder"]


class TailEncoder:
    """Sentence encoder that embeds the *end* of long prompts (where the question usually is).

    Sentence encoders truncate their input (all-MiniLM-L6-v2: 256 word pieces, about 1,000
    characters). Few-shot prompts start with the same exemplars, so a truncated embedding of
    every such prompt is the same vector and nearest-neighbour evidence is blind to the actual
    question. This encoder keeps the last ``max_chars`` characters of a longer prompt (cut at
    a whitespace when one is near) and embeds those; shorter prompts are embedded whole.

    Parameters
    ----------
    model : str, optional
        Sentence-transformers name or path (default: the offline all-MiniLM-L6-v2).
    max_chars : int, default 1000
        Characters kept from the end of a longer prompt.
    device : str, optional

    Attributes
    ----------
    model_id : str
        ``"<encoder id>|tail<max_chars>"`` (a separate embedding cache).

    Examples
    --------
    >>> TailEncoder(max_chars=10).clip("intro " * 5 + "the question?")
    'question?'
    """

    def __init__(self, model: str | None = None, max_chars: int = 1000, device: str | None = None):
        if int(max_chars) < 1:
            raise V0liteError(f"max_chars must be >= 1, got {max_chars!r}.")
        self.model = model
        self.max_chars = int(max_chars)
        self.device = device

    @property
    def model_id(self) -> str:
        from ..embed import _resolve_model

        return f"{_resolve_model(self.model)[0]}|tail{self.max_chars}"

    def clip(self, text: str) -> str:
        """The part of ``text`` that is embedded."""
        if len(text) <= self.max_chars:
            return text
        tail = text[-self.max_chars:]
        cut = tail.find(" ", 0, max(1, self.max_chars // 10))
        cut2 = tail.find("\n", 0, max(1, self.max_chars // 10))
        cut = min(c for c in (cut, cut2, len(tail)) if c >= 0)
        out = tail[cut + 1:] if cut < len(tail) - 1 else tail
        return out if out.strip() else tail

    def encode(self, texts: Sequence[str], **kw) -> np.ndarray:
        """L2-normalised embeddings of the clipped texts (through the plain encoder's disk cache)."""
        from ..embed import Embedder

        if getattr(self, "_inner", None) is None:
            self._inner = Embedder(self.model, device=self.device)
        return np.asarray(self._inner.encode([self.clip(t) for t in texts]), dtype=np.float32)
