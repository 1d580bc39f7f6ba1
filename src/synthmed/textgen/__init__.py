"""Text to image: hosted image APIs and local Stable Diffusion (generation and LoRA fine-tuning)."""
