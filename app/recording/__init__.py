"""Video kept for people to watch: event clips and continuous recordings, remuxed from the packet ring.

A stage of its own (DESIGN.md §1): it reads app.stream's rings and app.events' bus, and neither imports it.
"""
