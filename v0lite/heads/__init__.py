"""Prediction heads: read a query's retrieved context and predict its success probability."""

from .base import HEADS, BaseHead, get_head_class, make_head

__all__ = ["HEADS", "BaseHead", "get_head_class", "make_head"]
