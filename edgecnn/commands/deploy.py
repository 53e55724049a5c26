"""`edgecnn deploy device=rpi5 host=pi@raspberrypi.local [bundle=…] [service=true] [dry_run=true]`."""

from edgecnn.config import Key, Schema

HELP = "copy a bundle to a device over SSH, install its venv, optionally run it as a systemd service"
KEYS = Schema(
    Key("device", None, "device profile the bundle was built for (rpi5, jetson-orin-nano, ...)", required=True),
    Key("host", None, "user@host of the device", required=True),
    Key("bundle", None, "bundle .tar.gz (default: the newest *-<device>.tar.gz in dist/ or runs/*/bundle/)"),
    Key("service", False, "install and start the systemd service (needs passwordless sudo there)"),
    Key("dry_run", False, "print every command instead of running it"),
    Key("port", 22, "SSH port", min=1, max=65535),
    Key("identity", None, "SSH private key file"),
    Key("ssh_config", None, "an ssh config file (ssh -F), for jump hosts or known_hosts elsewhere"),
    Key("root", "~/edgecnn", "install directory on the device"),
    Key("python", None, "Python on the device (default: the profile's, e.g. python3.11)"),
    Key("venv", None, "venv on the device (default: <root>/venv-<hash of the requirements>)"),
)


def run(cfg: dict) -> dict:
    from pathlib import Path

    from edgecnn.deploy.install import deploy
    from edgecnn.deploy.profiles import load_profile
    from edgecnn.deploy.ssh import Remote

    profile = load_profile(cfg["device"])
    bundle = Path(cfg["bundle"]) if cfg["bundle"] else newest_bundle(profile.name)
    if not bundle.is_file():
        raise FileNotFoundError(f"bundle not found: {bundle}")
    remote = Remote(cfg["host"], cfg["port"], cfg["identity"], cfg["ssh_config"], cfg["dry_run"])
    result = deploy(bundle, profile, remote, cfg["root"], cfg["python"], cfg["venv"], cfg["service"])
    return {**result, "dry_run": cfg["dry_run"], "artifacts": {"bundle": str(bundle)}}


def newest_bundle(device: str):
    from pathlib import Path

    pattern = f"*-{device}.tar.gz"
    found = [*Path("dist").glob(pattern), *Path("runs").glob(f"*/bundle/{pattern}")]
    if not found:
        raise FileNotFoundError(f"no bundle {pattern} in dist/ or runs/*/bundle/: build one with "
                                f"`edgecnn bundle device={device} detector=…` or give bundle=")
    return max(found, key=lambda p: p.stat().st_mtime)
