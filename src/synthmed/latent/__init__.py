"""Latent diffusion: an autoencoder trained on the user's images and a conditioned latent UNet."""
