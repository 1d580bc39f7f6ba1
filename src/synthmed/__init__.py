"""synthmed: synthetic medical images with diffusion models, and the evidence of whether they are any good."""

__version__ = "0.1.0"
