"""Stage 3: frames and model outputs become observations and findings."""
