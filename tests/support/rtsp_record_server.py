"""An RTSP server that accepts publishing (GStreamer RECORD mode) and writes what it gets to a Matroska
file; run by Debian's /usr/bin/python3, which has gi.

usage: rtsp_record_server.py PORT OUT.mkv   (mount /live)
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    port, out = sys.argv[1], sys.argv[2]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
    factory.set_launch(f"( rtph264depay name=depay0 ! h264parse ! matroskamux ! filesink location={out} )")
    factory.set_eos_shutdown(True)  # the file is finished when the publisher tears down
    server.get_mount_points().add_factory("/live", factory)
    if server.attach(None) == 0:
        print("failed to bind", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
