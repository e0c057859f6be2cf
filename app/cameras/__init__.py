"""Cameras: the REST face of cameras and the runtime that owns their pipelines."""
