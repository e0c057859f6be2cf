"""Argus: self-hosted multi-camera video analytics."""

__version__ = "0.1.0"
