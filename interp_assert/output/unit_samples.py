"""A confidence claim's per-sample values, compact in JSON: float64 little-endian, zlib,
base64 (``"f8z:<n>:<base64>"``), so that a baseline file can pair a later run's samples with
the ones it recorded (``docs/definitions.md``, "Confidence on every claim")."""

from __future__ import annotations

import base64
import binascii
import zlib

import numpy as np

PREFIX = "f8z"


def encode_samples(samples: np.ndarray) -> str:
    """``samples`` (any shape, flattened) as text."""
    values = np.ascontiguousarray(np.asarray(samples, dtype="<f8").reshape(-1))
    packed = base64.b64encode(zlib.compress(values.tobytes(), 9)).decode("ascii")
    return f"{PREFIX}:{values.size}:{packed}"


def decode_samples(text: str) -> np.ndarray | None:
    """The values :func:`encode_samples` wrote, or None for text it did not write."""
    try:
        prefix, size, packed = text.split(":", 2)
        if prefix != PREFIX:
            return None
        raw = zlib.decompress(base64.b64decode(packed.encode("ascii"), validate=True))
        values = np.frombuffer(raw, dtype="<f8")
    except (ValueError, zlib.error, binascii.Error):
        return None
    return values.astype(np.float64) if values.size == int(size) else None


__all__ = ["decode_samples", "encode_samples"]
