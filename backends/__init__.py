"""Backends: one package per PPL (IR -> program text, engines that fit it, one canonical
ArviZ result), found through the registry of entry points (:mod:`.registry`)."""

from __future__ import annotations

from .base import Backend, Draws, Generator, to_inference_data
from .registry import backend_class, backend_names, backend_status, get_backend

__all__ = [
    "Backend",
    "Draws",
    "Generator",
    "backend_class",
    "backend_names",
    "backend_status",
    "get_backend",
    "to_inference_data",
]
