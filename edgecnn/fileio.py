"""Atomic writes, content hashes, stdout sent to stderr (stdlib only: the device bundle ships this module)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to `path`; it replaces `path` only if the block succeeds.

    Readers never see a half-written file, and an interrupted write leaves the old one intact.
    `suffix` ends the temporary name, for writers that pick a format from it (e.g. ".mp4").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            # mkstemp makes the file private (0600); the result gets the usual umask permissions.
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(path: str | os.PathLike) -> str:
    """Hash of a file, or of a directory's relative paths and file contents (order-independent)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(sha256_file(file).encode())
    return digest.hexdigest()


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send stdout to stderr while the block runs, at the file-descriptor level too: libraries that
    kept a reference to `sys.stdout`, or write to fd 1 from C/C++ (TensorFlow, onnx2tf), land on
    stderr as well. `edgecnn … --json` keeps stdout for its one JSON object this way."""
    sys.stdout.flush()
    saved_fd = os.dup(1)
    saved_stream = sys.stdout
    try:
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        yield
    finally:
        sys.stderr.flush()
        with contextlib.suppress(OSError, AttributeError, TypeError):  # C stdio buffers written while redirected
            import ctypes

            ctypes.CDLL(None).fflush(None)
        sys.stdout = saved_stream
        os.dup2(saved_fd, 1)
        os.close(saved_fd)
