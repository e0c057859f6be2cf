"""A real RTSP server (GStreamer) with N mounts of H.264: run by Debian's /usr/bin/python3, which has gi.

usage: rtsp_server.py PORT MOUNTS WIDTH HEIGHT FPS [PATTERN|CLIP.mkv]
Mounts are /cam1 .. /camN. With a pattern (ball, smpte, black, ...) each mount encodes live test
video with x264; with a .mkv clip the H.264 is served as it is (no re-encoding: cheap, for benchmarks).
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def launch_line(width: int, height: int, fps: int, source: str) -> str:
    if source.endswith(".mkv"):
        return f"( filesrc location={source} ! matroskademux ! h264parse ! rtph264pay name=pay0 pt=96 )"
    return (
        f"( videotestsrc is-live=true pattern={source} ! video/x-raw,width={width},height={height},"
        f"framerate={fps}/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps * 2} "
        "! rtph264pay name=pay0 pt=96 )"
    )


def main() -> None:
    port, mounts, width, height, fps = sys.argv[1], *map(int, sys.argv[2:6])
    source = sys.argv[6] if len(sys.argv) > 6 else "ball"
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    for i in range(1, mounts + 1):
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch_line(width, height, fps, source))
        factory.set_shared(True)
        server.get_mount_points().add_factory(f"/cam{i}", factory)
    if server.attach(None) == 0:
        print("failed to bind", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
