"""`edgecnn check-device device=rpi5 data=data.yaml [bundle=…] [video=…] [host=pi@…]`.

Installs the bundle as `deploy` does in an arm64 Debian bookworm root under qemu-user (Raspberry
Pi OS's base; built once with debootstrap and cached under `root=`), or on a real device over SSH
with `host=`, and on this host; runs its detector on the val images and its tracking app on a
video on both, and reports device-vs-host mAP, the share of images and frames whose detections
and tracks differ, the largest score difference and FPS (`edgecnn.deploy.check`). Where this
machine cannot emulate arm64 (not root, no binfmt_misc, no qemu-user-static or debootstrap) it
says what is missing and exits with code 3 (`cli.SKIPPED`), without doing anything.
"""

from edgecnn.config import Key, Schema

HELP = "install a bundle in an emulated arm64 root (or on a device over SSH) and compare it with this host"
KEYS = Schema(
    Key("device", None, "device profile of the bundle (rpi5, rpi4; jetson-* only with host=)", required=True),
    Key("data", None, "data.yaml whose images are run and scored on both sides", required=True),
    Key("bundle", None, "bundle .tar.gz (default: the newest *-<device>.tar.gz in dist/ or runs/*/bundle/)"),
    Key("video", None, "video for the tracking app (default: the val images as a 10 FPS video)"),
    Key("split", "val", "split of data"),
    Key("max_images", 100, "images run on both sides", min=1),
    Key("frames", 30, "video frames the tracking app runs (0: all; under emulation each takes seconds)", min=0),
    Key("conf", 0.25, "score from which a detection counts when comparing the two sides", min=0.0, max=1.0),
    Key("root", None, "the arm64 root (default: ~/.cache/edgecnn/roots/bookworm-arm64); built when absent"),
    Key("rebuild", False, "build the root again even when one is cached"),
    Key("mirror", "http://deb.debian.org/debian", "Debian mirror for the root"),
    Key("host", None, "user@host of a real device: compare it instead of the emulated root"),
    Key("port", 22, "SSH port", min=1, max=65535),
    Key("identity", None, "SSH private key file"),
    Key("ssh_config", None, "an ssh config file (ssh -F)"),
    Key("install_dir", "~/edgecnn-check", "where the check installs on each side (apart from deploy's ~/edgecnn)"),
    Key("out", "runs/check-device", "directory of the report (<bundle>/report.json, summary.txt)"),
)
VAL_THRESHOLDS = {"conf": 0.001, "iou": 0.6, "max_det": 300}  # what `edgecnn val` scores with


def run(cfg: dict) -> dict:
    import logging
    import time
    from pathlib import Path

    from edgecnn.commands.deploy import newest_bundle
    from edgecnn.deploy import emulation
    from edgecnn.deploy.bundle import read_manifest
    from edgecnn.deploy.check import require_detect_module, write_report
    from edgecnn.deploy.profiles import load_profile

    tic = time.perf_counter()
    profile = load_profile(cfg["device"])
    root = Path(cfg["root"]).expanduser() if cfg["root"] else emulation.DEFAULT_ROOT
    emulated = not cfg["host"]
    if emulated:
        check_profile_emulates(profile)
        missing = emulation.missing(root)
        if missing:
            for need in missing:
                logging.getLogger(__name__).error("cannot emulate arm64 here: needs %s", need)
            return {"status": "skipped", "missing": missing, "device": profile.name}
    bundle = Path(cfg["bundle"]) if cfg["bundle"] else newest_bundle(profile.name)
    if not bundle.is_file():
        raise FileNotFoundError(f"bundle not found: {bundle}")
    require_detect_module(bundle)
    root_reused = not emulated or (emulation.root_ready(root) and not cfg["rebuild"])
    root_build = 0.0 if root_reused else emulation.build_root(root, cfg["mirror"])
    report = compare_sides(cfg, profile, bundle, root, emulated)
    report.update(status="ok", device=profile.name, bundle=read_manifest(bundle)["name"], root_reused=root_reused,
                  root=str(root) if emulated else None)
    report["seconds"] = {"root_build": round(root_build, 1), **report.pop("side_seconds"),
                         "total": round(time.perf_counter() - tic, 1)}
    return write_report(report, Path(cfg["out"]) / report["bundle"])


def check_profile_emulates(profile) -> None:
    from edgecnn.config import ConfigError
    from edgecnn.deploy.emulation import SUITE

    if profile.python != "python3.11" or "tflite" not in profile.formats:
        raise ConfigError(f"device={profile.name}: its profile needs {profile.python} and {'/'.join(profile.formats)} "
                          f"(JetPack's Ubuntu); the emulated root is Debian {SUITE} (python3.11, the Pi's OS base), "
                          f"so only host=<user@device> checks it")


def compare_sides(cfg: dict, profile, bundle, root, emulated: bool) -> dict:
    import tempfile
    from pathlib import Path

    from edgecnn.deploy import emulation
    from edgecnn.deploy.check import build_payload, compare, detector_names, run_side
    from edgecnn.deploy.ssh import Remote

    if emulated:
        device_target = emulation.root_target(root)
    else:
        device_target = Remote(cfg["host"], cfg["port"], cfg["identity"], cfg["ssh_config"])
    host_home = Path.home() / ".cache" / "edgecnn" / "check-device-host"
    keys = {**VAL_THRESHOLDS, "frames": cfg["frames"]}
    with tempfile.TemporaryDirectory(prefix="edgecnn-check-") as work:
        payload = build_payload(cfg["data"], cfg["split"], cfg["max_images"], cfg["video"], Path(work),
                                cfg["frames"])
        detector_names(bundle, payload)
        device = run_side(bundle, profile, device_target, cfg["install_dir"], payload, keys)
        host = run_side(bundle, profile, emulation.host_target(host_home), cfg["install_dir"], payload, keys)
    report = compare(bundle, payload, device, host, cfg["conf"], emulated)
    report["side_seconds"] = {"device_install": device["install_s"], "device_run": device["run_s"],
                              "host_install": host["install_s"], "host_run": host["run_s"]}
    return report


def print_human(result: dict) -> None:
    from edgecnn.deploy.check import summary

    if result["status"] == "skipped":
        print(f"check-device skipped: this machine cannot emulate arm64; it needs {'; '.join(result['missing'])}")
        return
    print(summary(result))
    print(f"report: {result['artifacts']['report']}")
