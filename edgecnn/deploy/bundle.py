"""Device bundles: one reproducible .tar.gz with the models, the runtime and how to start it.

A bundle holds only what the device runs: the chosen artifacts under `models/`, `edgecnn/`
reduced to `__init__`, `config`, `fileio` and `runtime/` (numpy, OpenCV, scipy and an
interpreter; never torch or TensorFlow), the device's requirements, `run.sh`, the systemd unit,
the README, `config.json` (the app's defaults on this device), with `cameras=` the site's
cameras file as `cameras.yaml` (config.json then runs the site), and `manifest.json` with the
sha256 of every other file, which `run.sh` checks before it starts. The same inputs give the
same bytes: entries are sorted, owners and mtimes fixed, and the gzip header carries no time;
when several candidates are measured (x86), the timings go to `<name>.selection.json` beside it.
"""

from __future__ import annotations

import ast
import gzip
import hashlib
import io
import json
import logging
import os
import platform
import re
import sys
import tarfile
from pathlib import Path
from typing import Any


from edgecnn import __version__
from edgecnn.config import ConfigError
from edgecnn.deploy.profiles import DEVICES_DIR, DeviceProfile
from edgecnn.fileio import atomic_write_bytes, atomic_write_json

LOG = logging.getLogger(__name__)
PACKAGE_DIR = Path(__file__).resolve().parents[1]
SHIPPED_MODULES = ("__init__.py", "config.py", "fileio.py")
# What the shipped code may import besides the standard library and itself.
DEVICE_IMPORTS = {"numpy", "cv2", "scipy", "onnxruntime", "ai_edge_litert", "tflite_runtime", "picamera2", "paho"}
HOST_ONLY_IMPORTS = {"torch", "torchvision", "tensorflow", "onnx", "onnx2tf", "nncf", "torch_pruning"}
FIXED_MTIME = 946684800  # 2000-01-01: a fixed time that tar and unzip tools accept without warnings
EXECUTABLES = {"run.sh"}
TASKS = {"detector": "detect", "reid": "embed", "segmenter": "segment"}
APPS = {"detector": "edgecnn.runtime.app", "segmenter": "edgecnn.runtime.seg_app"}  # run.sh starts the one shipped


def shipped_sources() -> dict[str, Path]:
    """Archive path → source file for the code a device needs."""
    files = {f"edgecnn/{name}": PACKAGE_DIR / name for name in SHIPPED_MODULES}
    for path in sorted((PACKAGE_DIR / "runtime").rglob("*.py")):
        files[path.relative_to(PACKAGE_DIR.parent).as_posix()] = path
    check_imports(files)
    return files


def check_imports(files: dict[str, Path]) -> None:
    """Fail when shipped code imports host-only packages at module level, or edgecnn code not shipped.

    Imports inside functions may be optional fallbacks (the TFLite backend tries TensorFlow's
    interpreter last), so only module-level imports must resolve on the device.
    """
    shipped = {p.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for p in files}
    allowed = set(sys.stdlib_module_names) | DEVICE_IMPORTS
    for path in files.values():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in tree.body:
            for module, names in _imports(node):
                top = module.split(".")[0]
                if top == "edgecnn":
                    if module not in shipped and not all(f"{module}.{n}" in shipped for n in names):
                        raise ValueError(f"{path}:{node.lineno}: imports {module}, which the device bundle does not ship")
                elif top in HOST_ONLY_IMPORTS or top not in allowed:
                    raise ValueError(f"{path}:{node.lineno}: imports {top} at module level; device code may use "
                                     f"only the standard library and {', '.join(sorted(DEVICE_IMPORTS))}")


def _imports(node: ast.stmt) -> list[tuple[str, list[str]]]:
    """(module, imported names) of the module-level import statements in `node`."""
    if isinstance(node, ast.Import):
        return [(alias.name, []) for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [(node.module, [alias.name for alias in node.names])]
    if isinstance(node, (ast.If, ast.Try)):
        return [item for child in node.body for item in _imports(child)]
    return []


def inspect_artifact(path: Path, role: str, profile: DeviceProfile) -> dict[str, Any]:
    """Load an artifact with the device runtime, check it suits `role` and the profile, describe it."""
    from edgecnn.runtime.backends import load_backend

    fmt = path.suffix.lower().lstrip(".")
    if fmt not in profile.formats:
        raise ConfigError(f"{role}={path}: {profile.name} runs {' or '.join(profile.formats)} artifacts "
                          f"({profile.path.name}); export one with `edgecnn export format={profile.formats[0]}`")
    backend = load_backend(path, threads=profile.threads)
    meta = backend.meta
    if meta["task"] != TASKS[role]:
        raise ConfigError(f"{role}={path}: a {meta['task']} model; the {role} must be a {TASKS[role]} model")
    precision = meta.get("precision")  # None: the artifact does not say; not checked
    if profile.precision != "any" and precision is not None and precision != profile.precision:
        raise ConfigError(f"{role}={path}: {precision} model; {profile.name} ships {profile.precision} "
                          f"({profile.path.name})")
    if role == "detector" and max(backend.input_size) != profile.imgsz:
        LOG.warning("%s: input size %s differs from %s's imgsz %d", path, backend.input_size, profile.name, profile.imgsz)
    info = {"file": f"models/{path.name}", "format": fmt, "precision": precision, "task": meta["task"],
            "input_size": list(backend.input_size), "names": meta.get("names")}
    return {"info": info, "backend": backend}


def choose(paths: list[Path], role: str, profile: DeviceProfile) -> tuple[Path, dict[str, Any], dict[str, float]]:
    """The artifact to ship for `role`: the only candidate, or the fastest measured on this host."""
    candidates = {path: inspect_artifact(path, role, profile) for path in paths}
    if len(candidates) == 1:
        (path, found), = candidates.items()
        return path, found["info"], {}
    from edgecnn.runtime.timing import measure_latency

    timings = {str(p): round(measure_latency(c["backend"], runs=20, warmup=3)["latency_ms_p50"], 3)
               for p, c in candidates.items()}
    best = min(candidates, key=lambda p: timings[str(p)])
    LOG.info("%s: measured %s; shipping %s", role, timings, best.name)
    return best, candidates[best]["info"], timings


def build_bundle(profile: DeviceProfile, detector: list[Path] | None, reid: list[Path] | None, out: Path,
                 name: str | None = None, cameras: Path | None = None, segmenter: list[Path] | None = None) -> Path:
    """Write `<out>/<name>.tar.gz` (name: `<model stem>-<device>`) and return its path.

    The bundle runs one app: tracking (`detector`, optional `reid` and `cameras`) or segmentation (`segmenter`).
    """
    if bool(segmenter) == bool(detector) or (segmenter and (reid or cameras)):
        raise ConfigError("a bundle runs one app: give detector= (and optionally reid=, cameras=) or segmenter= alone")
    if cameras is not None:
        check_cameras(cameras)
    role = "segmenter" if segmenter else "detector"
    det_path, det_info, det_timings = choose(segmenter or detector, role, profile)
    models = {role: (det_path, det_info)}
    selection = {role: det_timings} if det_timings else {}
    if reid:
        reid_path, reid_info, reid_timings = choose(reid, "reid", profile)
        if reid_info["file"] == det_info["file"]:
            raise ConfigError(f"detector and reid have the same file name {reid_path.name}; rename one")
        models["reid"] = (reid_path, reid_info)
        if reid_timings:
            selection["reid"] = reid_timings
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", name or f"{det_path.stem}-{profile.name}")

    contents: dict[str, bytes] = {arc: src.read_bytes() for arc, src in shipped_sources().items()}
    for path, info in models.values():
        contents[info["file"]] = path.read_bytes()
    config = {"model": det_info["file"], **({"reid": models["reid"][1]["file"]} if "reid" in models else {}),
              **profile.app_config()}
    if cameras is not None:
        contents["cameras.yaml"] = cameras.read_bytes()
        config["cameras"] = "cameras.yaml"
    contents["config.json"] = _json(config)
    contents["device.yaml"] = profile.path.read_bytes()
    contents["requirements.txt"] = profile.requirements.read_bytes()
    for file in ("run.sh", "edgecnn.service", "README.md"):
        contents[file] = (DEVICES_DIR / file).read_bytes()

    manifest = {
        "format": "edgecnn-bundle/1", "name": name, "edgecnn_version": __version__,
        "device": profile.name, "description": profile.description, "python": profile.python,
        "system_site_packages": profile.system_site_packages,
        "models": {role: info for role, (_, info) in models.items()}, "app": APPS[role],
        "files": {arc: hashlib.sha256(data).hexdigest() for arc, data in sorted(contents.items())},
    }
    contents["manifest.json"] = _json(manifest)
    target = Path(out) / f"{name}.tar.gz"
    atomic_write_bytes(target, reproducible_targz(name, contents))
    if selection:  # measured timings vary run to run: beside the bundle, not inside it
        atomic_write_json(selection_path(target), {"median_latency_ms": selection, "host": platform.node()})
    else:
        selection_path(target).unlink(missing_ok=True)
    LOG.info("bundle written to %s (%.1f kB)", target, target.stat().st_size / 1024)
    return target


def check_cameras(path: Path) -> None:
    """A cameras file a bundle can ship: valid, and leaving the models to the bundle."""
    from edgecnn.runtime.cameras import load_site

    site = load_site(path)
    shipped = sorted({"model", "reid"} & set(site.settings))
    if shipped:
        raise ConfigError(f"cameras={path}: sets {shipped[0]}:, but the bundle ships its own models "
                          "(detector=, reid=); remove it from the cameras file")


def selection_path(bundle: Path) -> Path:
    """Where the host's latency measurements that chose the artifacts are kept."""
    return bundle.with_name(bundle.name.removesuffix(".tar.gz") + ".selection.json")


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def reproducible_targz(root: str, contents: dict[str, bytes]) -> bytes:
    """A gzip'd tar of `contents` under `root/`: sorted, root-owned, fixed mtimes, no gzip time."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({"/".join(a.split("/")[:i]) for a in contents for i in range(1, a.count("/") + 1)})
        for arc in [""] + dirs:
            info = _tarinfo(f"{root}/{arc}".rstrip("/"), tarfile.DIRTYPE, 0o755)
            tar.addfile(info)
        for arc in sorted(contents):
            data = contents[arc]
            info = _tarinfo(f"{root}/{arc}", tarfile.REGTYPE, 0o755 if arc in EXECUTABLES else 0o644)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def _tarinfo(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def read_manifest(bundle: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a bundle .tar.gz."""
    with tarfile.open(bundle, "r:gz") as tar:
        member = next((m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/manifest.json")), None)
        if member is None:
            raise ValueError(f"{bundle}: not an edgecnn bundle (no <name>/manifest.json)")
        return json.loads(tar.extractfile(member).read())
