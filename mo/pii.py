"""PII tokens and display masks in plain Python: one keyed hash for the platform and the serving API.

``token(key, kind, value)`` = lowercase hex HMAC-SHA256(key, normalised value) for the kinds people are
joined on (``id_number``, ``phone``, ``identifier``, ``plate``): the same person gets the same token in every
table and every run, and without the key a token cannot be reversed by hashing every phone number.
``mask(kind, value)`` is what a screen may show. The lake computes the same functions with native Spark
expressions (spark_jobs/pii.py, which re-exports these); a unit test holds the two together. The serving API
tokenises a looked-up phone or ID number with :func:`token` (this module imports nothing beyond the standard
library, so the serving environment, which has no Spark, can use it).

Normalisation before hashing, so formatting differences do not split one person into two tokens:
``id_number`` trimmed and upper-cased (the check digit X), ``phone`` digits only without a leading
86 country code, ``plate`` upper-cased without spaces, middle dots and hyphens, ``identifier`` trimmed.
Only ASCII spaces are trimmed, identically in Spark and Python.
"""

from __future__ import annotations

import hashlib
import hmac
import re

TOKENISED_KINDS = frozenset({"id_number", "phone", "identifier", "plate"})
MASKED_KINDS = frozenset({"name", "id_number", "phone", "plate", "address"})
PII_KINDS = TOKENISED_KINDS | MASKED_KINDS

_BLOCK_SIZE = 64  # SHA-256 block size in bytes


def padded_keys(key: bytes) -> tuple[bytes, bytes]:
    """(K ^ ipad, K ^ opad) as RFC 2104 defines them for SHA-256."""
    if len(key) > _BLOCK_SIZE:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK_SIZE, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def normalise(kind: str, value: str | None) -> str | None:
    if value is None:
        return None
    if kind == "id_number":
        return value.strip(" ").upper()
    if kind == "phone":
        digits = re.sub(r"[^0-9]", "", value)
        return digits[2:] if len(digits) == 13 and digits.startswith("86") else digits
    if kind == "plate":
        return re.sub(r"[ \t·\-]", "", value).upper()
    return value.strip(" ")


def token(key: bytes, kind: str, value: str | None) -> str | None:
    """The join token of a value: lowercase hex HMAC-SHA256 of the normalised value."""
    norm = normalise(kind, value)
    if norm is None:
        return None
    return hmac.new(key, norm.encode("utf-8"), hashlib.sha256).hexdigest()


def mask(kind: str, value: str | None) -> str | None:
    """The display form of a value (None for kinds that have none)."""
    if value is None or kind not in MASKED_KINDS:
        return None
    norm = normalise(kind, value) if kind in ("id_number", "phone", "plate") else value
    if norm is None:
        return None
    if kind == "name":
        return norm[:1] + "**"
    if kind == "id_number":
        return norm[:3] + "*" * max(len(norm) - 7, 0) + norm[-4:]
    if kind == "phone":
        return norm[:3] + "****" + norm[-4:]
    if kind == "plate":
        return norm[:2] + "****" + norm[-1:]
    return norm[:6] + "****"  # address
