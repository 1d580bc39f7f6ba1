"""Train stage: the diffusion training loop, EMA, checkpoints and resume."""
