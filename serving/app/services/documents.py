"""Claim documents: the file type from its content, and a content-addressed store on disk.

Type by content: the first bytes decide (``%PDF-``, JPEG's ``FF D8 FF``, PNG's 8-byte signature); the file
name and the declared Content-Type are only checked against that, never trusted. Anything else is 415;
a name or declared type that says something other than the content is 422 naming the field.

Storage: a directory (``SERVING_DOCUMENT_DIR``, default ``MO_HOME/documents``), each file at
``<sha256[:2]>/<sha256>``, written to a temporary name and renamed, so a reader never sees half a file and
the same content uploaded twice is stored once. Files rather than database rows because documents are up to
``max_upload_bytes`` each: in the source database they would swell the core systems' backups and its
replication, and the metadata (in ``claim_documents``) is all the API queries. A file written for a
transaction that then rolls back is an orphan nobody points to: harmless, and the same content arriving
again reuses it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from app.core.errors import ApiError

PDF = "application/pdf"
JPEG = "image/jpeg"
PNG = "image/png"
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", PDF),
    (b"\xff\xd8\xff", JPEG),
    (b"\x89PNG\r\n\x1a\n", PNG),
)
EXTENSIONS = {".pdf": PDF, ".jpg": JPEG, ".jpeg": JPEG, ".png": PNG}
# Declared types clients send for these files; anything generic (or nothing) is not a disagreement.
DECLARED = {"application/pdf": PDF, "image/jpeg": JPEG, "image/jpg": JPEG, "image/pjpeg": JPEG, "image/png": PNG}
GENERIC_DECLARED = {"", "application/octet-stream", "binary/octet-stream"}


@dataclass(frozen=True)
class Detected:
    content_type: str
    sha256: str
    size_bytes: int


def sniff(content: bytes) -> str | None:
    for signature, content_type in SIGNATURES:
        if content.startswith(signature):
            return content_type
    return None


def check_file(content: bytes, *, file_name: str, declared_type: str | None, max_bytes: int) -> Detected:
    """The file's type from its content, or the 4xx that names what is wrong with it."""
    if len(content) > max_bytes:
        raise ApiError(
            413,
            f"file is {len(content)} bytes; the limit is {max_bytes}",
            errors=[("/body/file", f"larger than {max_bytes} bytes")],
        )
    if not content:
        raise ApiError(422, "file is empty", kind="validation", errors=[("/body/file", "empty file")])
    detected = sniff(content)
    if detected is None:
        raise ApiError(
            415,
            "file content is not PDF, JPEG or PNG",
            errors=[("/body/file", "content is not a PDF, JPEG or PNG file (checked by its first bytes)")],
        )
    extension = Path(file_name).suffix.lower()
    named = EXTENSIONS.get(extension)
    if named is None or named != detected:
        raise ApiError(
            422,
            f"file name '{file_name}' does not match its content ({detected})",
            kind="validation",
            errors=[("/body/file/filename", f"extension '{extension or '(none)'}' does not match content {detected}")],
        )
    declared = (declared_type or "").split(";")[0].strip().lower()
    if declared not in GENERIC_DECLARED and DECLARED.get(declared) != detected:
        raise ApiError(
            415,
            f"declared type '{declared}' does not match the file's content ({detected})",
            errors=[("/body/file/content_type", f"declared '{declared}', content is {detected}")],
        )
    return Detected(detected, hashlib.sha256(content).hexdigest(), len(content))


class DocumentStore:
    """Content-addressed files under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put(self, content: bytes, sha256: str) -> Path:
        target = self.path_of(sha256)
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return target

    def get(self, sha256: str) -> bytes:
        return self.path_of(sha256).read_bytes()
