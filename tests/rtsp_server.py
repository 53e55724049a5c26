"""A real RTSP server (GStreamer's gst-rtsp-server, Debian's gir1.2-gst-rtsp-server-1.0) that a test
stops and restarts. Run as a module by the system Python (/usr/bin/python3 has `gi`; the venv does
not): `python3 -m tests.rtsp_server PORT [WIDTH HEIGHT FPS]` from the repository root serves rtsp://127.0.0.1:PORT/cam, a moving
test pattern as H.264, until killed.

`RtspServer(port).start()` / `.stop()` from a test (the port stays the same across restarts).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.listening import wait_until_listening

SYSTEM_PYTHON = "/usr/bin/python3"
ROOT = Path(__file__).resolve().parents[1]
PROBE = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0'); "
         "from gi.repository import Gst; Gst.init(None); "
         "assert all(Gst.ElementFactory.find(e) for e in ('videotestsrc', 'x264enc', 'rtph264pay'))")


def rtsp_server_missing() -> str | None:
    """Why the server cannot run here (for a skip), or None."""
    if not Path(SYSTEM_PYTHON).is_file():
        return f"{SYSTEM_PYTHON} not found"
    probe = subprocess.run([SYSTEM_PYTHON, "-c", PROBE], capture_output=True, timeout=60)
    if probe.returncode:
        return ("GStreamer RTSP server not installed (apt install python3-gst-1.0 gir1.2-gst-rtsp-server-1.0 "
                "gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly)")
    return None


class RtspServer:
    def __init__(self, port: int, size: tuple[int, int] = (320, 240), fps: int = 15):
        self.port, self.size, self.fps = port, size, fps
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def start(self) -> "RtspServer":
        w, h = self.size
        self.process = subprocess.Popen([SYSTEM_PYTHON, "-m", "tests.rtsp_server", str(self.port), str(w), str(h),
                                         str(self.fps)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
        wait_until_listening(self.process, self.port, "RTSP server", 15, lambda: self.process.stderr.read().decode())
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


def serve(port: int, width: int, height: int, fps: int) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},"
                       f"framerate={fps}/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} ! "
                       "rtph264pay name=pay0 pt=96 )")
    factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)
    server.attach(None)
    GLib.MainLoop().run()


if __name__ == "__main__":
    serve(*(int(a) for a in sys.argv[1:5]))
