"""Device profiles (`devices/<name>.yaml`): what artifact a target runs and how it starts.

A profile names the Python the device has, the artifact formats and precision to ship, the
model input size, interpreter threads, the default camera source and its requirements file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from edgecnn.config import ConfigError

DEVICES_DIR = Path(__file__).resolve().parents[2] / "devices"
FORMATS = ("onnx", "tflite")
PRECISIONS = ("int8", "fp16", "fp32", "any")
REQUIRED = ("description", "python", "artifact", "imgsz", "threads", "source", "requirements")


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    path: Path  # the YAML it came from
    description: str
    python: str  # interpreter the device must have, e.g. python3.11
    formats: tuple[str, ...]  # artifact formats it runs; several: the fastest measured on the host ships
    precision: str  # int8, fp16, fp32 or any
    imgsz: int
    threads: int
    source: str
    requirements: Path
    providers: tuple = ()  # ONNX Runtime execution providers in order: names or [name, {options}]
    system_site_packages: bool = False  # the venv sees apt's packages (picamera2, JetPack's OpenCV)

    def app_config(self) -> dict:
        """The tracking app's defaults on this device (the bundle's config.json adds the models)."""
        cfg = {"source": self.source, "threads": self.threads}
        if self.providers:
            cfg["providers"] = list(self.providers)
        return cfg


def available(devices_dir: str | os.PathLike = DEVICES_DIR) -> list[str]:
    return sorted(p.stem for p in Path(devices_dir).glob("*.yaml"))


def load_profile(name: str, devices_dir: str | os.PathLike = DEVICES_DIR) -> DeviceProfile:
    """The profile `devices/<name>.yaml`; unknown names and missing or bad keys are ConfigErrors."""
    devices_dir = Path(devices_dir)
    path = devices_dir / f"{name}.yaml"
    if not path.is_file():
        import difflib

        names = available(devices_dir)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown device '{name}'{hint}; profiles in {devices_dir}: {', '.join(names) or 'none'}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys, got {type(data).__name__}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ConfigError(f"{path}: missing key(s) {', '.join(missing)}; a profile needs {', '.join(REQUIRED)}")
    unknown = set(data) - set(REQUIRED) - {"providers", "system_site_packages"}
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    artifact = data["artifact"]
    if not isinstance(artifact, dict) or not artifact.get("formats"):
        raise ConfigError(f"{path}: artifact needs formats (a list of {', '.join(FORMATS)}) and precision")
    formats = tuple(artifact["formats"])
    if not set(formats) <= set(FORMATS):
        raise ConfigError(f"{path}: artifact.formats {list(formats)} must be among {', '.join(FORMATS)}")
    precision = artifact.get("precision", "any")
    if precision not in PRECISIONS:
        raise ConfigError(f"{path}: artifact.precision={precision!r}; use one of {', '.join(PRECISIONS)}")
    for key in ("imgsz", "threads"):
        if not isinstance(data[key], int) or data[key] < 1:
            raise ConfigError(f"{path}: {key} must be a positive integer, got {data[key]!r}")
    for provider in data.get("providers") or ():
        named = isinstance(provider, str) or (isinstance(provider, list) and len(provider) == 2
                                             and isinstance(provider[0], str) and isinstance(provider[1], dict))
        if not named:
            raise ConfigError(f"{path}: providers: {provider!r} is neither a name nor [name, {{options}}]")
    requirements = devices_dir / str(data["requirements"])
    if not requirements.is_file():
        raise ConfigError(f"{path}: requirements file not found: {requirements}")
    return DeviceProfile(
        name=name, path=path, description=str(data["description"]), python=str(data["python"]),
        formats=formats, precision=precision, imgsz=data["imgsz"], threads=data["threads"],
        source=str(data["source"]), requirements=requirements, providers=tuple(data.get("providers") or ()),
        system_site_packages=bool(data.get("system_site_packages", False)),
    )
