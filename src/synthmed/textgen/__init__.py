"""Text to image: hosted image APIs and local Stable Diffusion (generation and LoRA fine-tuning).

Light imports only (no torch/diffusers at package import): providers, registry, captions.
"""

from synthmed.textgen.providers import (
    AuthenticationError,
    BudgetExceededError,
    GeneratedImage,
    ImageProvider,
    PromptRefusedError,
    ProviderError,
    ProviderUnavailableError,
    RequestBudget,
)
from synthmed.textgen.registry import PROVIDERS, build_provider

__all__ = [
    "AuthenticationError",
    "BudgetExceededError",
    "GeneratedImage",
    "ImageProvider",
    "PROVIDERS",
    "PromptRefusedError",
    "ProviderError",
    "ProviderUnavailableError",
    "RequestBudget",
    "build_provider",
]
