"""Ultralytics (a test dependency, AGPL, never imported by edgecnn) imported the one way the tests
need it: it reads its settings at import, so first offline, no auto-install, quiet, and its
settings file in a temporary folder (never the user's)."""

from __future__ import annotations

import os
import tempfile

import pytest


def import_ultralytics():
    """The `ultralytics` module, or the calling test module skipped when it is not installed."""
    os.environ.update(YOLO_OFFLINE="true", YOLO_AUTOINSTALL="false", YOLO_VERBOSE="false")
    os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-config-"))
    return pytest.importorskip("ultralytics", reason="ultralytics (the dev extra, a test dependency) is not installed")
