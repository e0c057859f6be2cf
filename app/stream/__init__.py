"""Stage 1: sources, drop policies and the sampler: everything before inference."""
