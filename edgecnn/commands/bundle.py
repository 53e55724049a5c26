"""`edgecnn bundle device=rpi5 detector=det.tflite [reid=reid.tflite] [cameras=site.yaml] out=dist/` (the
tracking app), or `edgecnn bundle device=rpi5 segmenter=seg.tflite` (the segmentation app)."""

from edgecnn.config import ConfigError, Key, Schema

HELP = "build a self-contained, reproducible device bundle (.tar.gz) for a device profile"
KEYS = Schema(
    Key("device", None, "device profile: a name in devices/ (rpi4, rpi5, jetson-nano, jetson-orin-nano, x86-cpu)",
        required=True),
    Key("detector", None, "detector artifact(s); several (comma-separated): the fastest measured here ships", type=list),
    Key("reid", None, "ReID embedder artifact(s), same rules as detector", type=list),
    Key("segmenter", None, "segmentation artifact(s) instead of a detector: the bundle runs the segmentation app",
        type=list),
    Key("cameras", None, "cameras file (YAML) the device runs: several cameras in one process (no model: key)"),
    Key("out", "dist", "directory to write <model>-<device>.tar.gz in"),
    Key("name", None, "bundle name (default: <model file stem>-<device>)"),
)


def run(cfg: dict) -> dict:
    from pathlib import Path

    from edgecnn.deploy.bundle import build_bundle, read_manifest, selection_path
    from edgecnn.deploy.profiles import load_profile

    profile = load_profile(cfg["device"])
    paths = {key: [Path(p) for p in cfg[key] or []] for key in ("detector", "reid", "segmenter")}
    if not paths["detector"] and not paths["segmenter"]:
        raise ConfigError("edgecnn bundle: detector= is required (the tracking app), or segmenter= (the segmentation app)")
    for path in paths["detector"] + paths["reid"] + paths["segmenter"]:
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
    cameras = Path(cfg["cameras"]) if cfg["cameras"] else None
    target = build_bundle(profile, paths["detector"], paths["reid"] or None, Path(cfg["out"]), cfg["name"], cameras,
                          segmenter=paths["segmenter"] or None)
    manifest = read_manifest(target)
    return {"device": profile.name, "size_kb": round(target.stat().st_size / 1024, 1),
            "files": len(manifest["files"]) + 1, "models": {k: v["file"] for k, v in manifest["models"].items()},
            "artifacts": {"bundle": str(target),
                          **({"selection": str(selection_path(target))} if selection_path(target).is_file() else {})}}
