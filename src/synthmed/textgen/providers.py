"""The text-to-image provider interface: one `generate` signature, typed results, errors, a budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from PIL import Image

SizePx = int | tuple[int, int]
"""A square side in pixels, or `(width_px, height_px)`."""


@dataclass(frozen=True)
class GeneratedImage:
    """One image from a provider, with everything needed to reproduce or audit it."""

    image: Image.Image
    prompt: str
    provider: str
    model: str
    seed: int | None = None  # None where the provider cannot be seeded (hosted APIs)
    parameters: dict[str, Any] = field(default_factory=dict)  # size, quality, steps, ... as sent
    revised_prompt: str | None = None  # what a hosted model says it actually drew


@runtime_checkable
class ImageProvider(Protocol):
    """Anything that turns a text prompt into images.

    `generate` returns exactly `n` images or raises a `ProviderError`; image `i` uses seed
    `seed + i` where the provider can be seeded. `max_images_per_call` tells callers how to
    batch so that images can be saved as they arrive.
    """

    name: str
    model: str
    max_images_per_call: int

    def generate(
        self, prompt: str, *, n: int = 1, size_px: SizePx | None = None, seed: int | None = None, **options: Any
    ) -> list[GeneratedImage]: ...


class ProviderError(RuntimeError):
    """A provider could not produce images; the message says what to change."""


class PromptRefusedError(ProviderError):
    """The provider refused the prompt (content policy / moderation)."""


class AuthenticationError(ProviderError):
    """The credentials are missing or rejected."""


class ProviderUnavailableError(ProviderError):
    """The provider kept failing (rate limit or server errors) after every retry."""


class BudgetExceededError(ProviderError):
    """Sending the next request would go over the run's request or image budget."""


@dataclass
class RequestBudget:
    """Caps on what one run may send; `charge` is called BEFORE each request goes out.

    `None` means no cap. Retried attempts count as requests (each one reaches the server).
    """

    max_requests: int | None = None
    max_images: int | None = None
    requests_sent: int = 0
    images_requested: int = 0

    def __post_init__(self) -> None:
        for name in ("max_requests", "max_images"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None, got {value}")

    def check(self, *, requests: int = 1, images: int = 0) -> None:
        """Raise BudgetExceededError if `requests` more requests for `images` images would exceed a cap."""
        if self.max_requests is not None and self.requests_sent + requests > self.max_requests:
            raise BudgetExceededError(
                f"request budget reached: {self.requests_sent} of {self.max_requests} requests already sent, "
                f"{requests} more needed. Raise --max-requests or ask for fewer images."
            )
        if self.max_images is not None and self.images_requested + images > self.max_images:
            raise BudgetExceededError(
                f"image budget reached: {self.images_requested} of {self.max_images} images already requested, "
                f"{images} more needed. Raise --max-images or ask for fewer images."
            )

    def charge(self, *, images: int) -> None:
        """Check, then record one request for `images` images."""
        self.check(requests=1, images=images)
        self.requests_sent += 1
        self.images_requested += images


def parse_size(size: str | int | tuple[int, int] | None) -> SizePx | None:
    """'512' -> 512, '1024x1792' -> (1024, 1792); ints and tuples pass through; None stays None."""
    if size is None or isinstance(size, (int, tuple)):
        return size
    text = str(size).lower().strip()
    try:
        if "x" in text:
            width, height = (int(part) for part in text.split("x", 1))
            return (width, height)
        return int(text)
    except ValueError:
        raise ValueError(
            f"size {size!r} is not understood: give '512' (square) or 'WIDTHxHEIGHT' like '1024x1792'."
        ) from None


def size_as_pair(size_px: SizePx) -> tuple[int, int]:
    """(width_px, height_px) of a size given as a square side or a pair."""
    return (size_px, size_px) if isinstance(size_px, int) else (int(size_px[0]), int(size_px[1]))
