"""Annotated re-stream: a camera's analysed video with overlays, published to an RTSP/RTMP server."""
