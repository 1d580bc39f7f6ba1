"""Models stage: diffusion networks and their typed, saved-beside-the-weights configs."""
