"""Models stage: the class-conditional diffusion UNet, its config/presets, folder save/load and samplers."""

from synthmed.models.config import PRESETS, DiffusionModelConfig, preset_config, preset_for_size

__all__ = ["PRESETS", "DiffusionModelConfig", "preset_config", "preset_for_size"]
