"""OpenAI Images API client (POST {base_url}/images/generations) with retries, backoff and a budget.

What the user supplies: an API key in `OPENAI_API_KEY` (or `api_key=`), optionally a base URL in
`OPENAI_BASE_URL` (or `base_url=`; tests point it at a stub server on 127.0.0.1).
"""

from __future__ import annotations

import base64
import email.utils
import io
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image

from synthmed.textgen.providers import (
    AuthenticationError,
    BudgetExceededError,
    GeneratedImage,
    PromptRefusedError,
    ProviderError,
    ProviderUnavailableError,
    RequestBudget,
    SizePx,
    size_as_pair,
)

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
REFUSAL_CODES = frozenset({"content_policy_violation", "moderation_blocked"})
NO_RETRY_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})


@dataclass(frozen=True)
class ImageModelSpec:
    """What one hosted model accepts."""

    sizes: tuple[str, ...]  # allowed 'WxH' strings ('auto' where the model takes it)
    max_n: int  # images per request
    qualities: tuple[str, ...]  # allowed quality values
    takes_response_format: bool  # dall-e-*: ask for b64_json; gpt-image-*: always base64


DALLE2 = ImageModelSpec(("256x256", "512x512", "1024x1024"), 10, ("standard",), True)
DALLE3 = ImageModelSpec(("1024x1024", "1792x1024", "1024x1792"), 1, ("standard", "hd"), True)
GPT_IMAGE = ImageModelSpec(
    ("1024x1024", "1536x1024", "1024x1536", "auto"), 10, ("low", "medium", "high", "auto"), False
)
MODEL_SPECS: dict[str, ImageModelSpec] = {"dall-e-2": DALLE2, "dall-e-3": DALLE3, "gpt-image-1": GPT_IMAGE}


def spec_for(model: str) -> ImageModelSpec:
    """The spec of `model`; newer `gpt-image-*` models share gpt-image-1's."""
    if model in MODEL_SPECS:
        return MODEL_SPECS[model]
    if model.startswith("gpt-image-"):
        return GPT_IMAGE
    raise ValueError(
        f"unknown OpenAI image model {model!r}: use one of {sorted(MODEL_SPECS)} or a newer 'gpt-image-*' model."
    )


class OpenAIImagesProvider:
    """`ImageProvider` for the OpenAI Images API (DALL-E 2/3, gpt-image-1 and newer gpt-image-* models).

    Requests are split by the model's images-per-request limit. 429/5xx and connection errors
    are retried with exponential backoff and jitter, waiting at least what `Retry-After`
    asks. Every attempt is charged to `budget` before it is sent.
    """

    name = "openai"

    def __init__(
        self,
        *,
        model: str = "gpt-image-1",
        api_key: str | None = None,
        base_url: str | None = None,
        budget: RequestBudget | None = None,
        quality: str | None = None,
        max_retries: int = 4,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        timeout_s: float = 180.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter_rng: random.Random | None = None,
    ):
        self.model = model
        self.spec = spec_for(model)
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.budget = budget or RequestBudget()
        self.quality = quality
        if quality is not None:
            self._check_quality(quality)
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.sleep = sleep
        self.jitter_rng = jitter_rng or random.Random()
        self.max_images_per_call = self.spec.max_n
        self._client = httpx.Client(timeout=timeout_s)

    # Public interface.

    def generate(
        self, prompt: str, *, n: int = 1, size_px: SizePx | None = None, seed: int | None = None, **options: Any
    ) -> list[GeneratedImage]:
        """`n` images for `prompt`; `options` may hold quality, style, background, output_format, moderation."""
        if not self.api_key:
            raise AuthenticationError(
                "no OpenAI API key: set the OPENAI_API_KEY environment variable "
                "(or pass api_key=) before using --provider openai."
            )
        if not prompt.strip():
            raise ValueError("the prompt is empty: describe the image to generate.")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if seed is not None:
            log.info("the OpenAI Images API takes no seed; seed %s is not sent and not recorded", seed)
        body_base = self._request_body(prompt, size_px=size_px, options=options)
        batches = [self.spec.max_n] * (n // self.spec.max_n) + ([n % self.spec.max_n] if n % self.spec.max_n else [])
        # Refuse up front when the whole job cannot fit the budget (retries may still use up the rest).
        self.budget.check(requests=len(batches), images=n)
        images: list[GeneratedImage] = []
        for count in batches:
            payload = self._post_with_retries({**body_base, "n": count})
            images.extend(self._decode(payload, prompt=prompt, body={**body_base, "n": count}))
        return images

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAIImagesProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Request building.

    def _check_quality(self, quality: str) -> None:
        if quality not in self.spec.qualities:
            raise ValueError(
                f"quality {quality!r} is not accepted by {self.model}; use one of {list(self.spec.qualities)}."
            )

    def _request_body(self, prompt: str, *, size_px: SizePx | None, options: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "prompt": prompt}
        if size_px is not None:
            width, height = size_as_pair(size_px)
            size = f"{width}x{height}"
            if size not in self.spec.sizes:
                raise ValueError(f"size {size} is not offered by {self.model}; use one of {list(self.spec.sizes)}.")
            body["size"] = size
        quality = options.pop("quality", None) or self.quality
        if quality is not None:
            self._check_quality(quality)
            body["quality"] = quality
        if self.spec.takes_response_format:
            body["response_format"] = "b64_json"
        body.update({k: v for k, v in options.items() if v is not None})
        return body

    # Sending, with retries.

    def _post_with_retries(self, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/images/generations"
        headers = {"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"}
        last_problem = ""
        for attempt in range(self.max_retries + 1):
            self.budget.charge(images=int(body["n"]))
            try:
                response = self._client.post(url, json=body, headers=headers)
            except httpx.TransportError as exc:
                last_problem = f"connection error: {exc}"
                wait_s = self._backoff_s(attempt, retry_after_s=None)
            else:
                if response.status_code == 200:
                    return response.json()
                code, message = _error_fields(response)
                if response.status_code not in RETRY_STATUS or code in NO_RETRY_CODES:
                    raise self._error_for(response.status_code, code, message)
                last_problem = f"HTTP {response.status_code} {code or ''} {message}".strip()
                wait_s = self._backoff_s(attempt, retry_after_s=_retry_after_s(response))
            if attempt == self.max_retries:
                break
            log.warning(
                "OpenAI images request failed (%s); retry %d/%d in %.1f s",
                last_problem,
                attempt + 1,
                self.max_retries,
                wait_s,
            )
            self.sleep(wait_s)
        raise ProviderUnavailableError(
            f"OpenAI images request failed after {self.max_retries + 1} attempts; last: {last_problem}. "
            f"Wait and run again, or lower -n."
        )

    def _backoff_s(self, attempt: int, *, retry_after_s: float | None) -> float:
        """Exponential backoff with jitter (50-100% of base * 2**attempt, capped), never shorter than Retry-After."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2**attempt)
        jittered = self.jitter_rng.uniform(0.5 * ceiling, ceiling)
        return max(jittered, retry_after_s) if retry_after_s is not None else jittered

    def _error_for(self, status: int, code: str | None, message: str) -> ProviderError:
        if status == 400 and code in REFUSAL_CODES:
            return PromptRefusedError(
                f"OpenAI refused the prompt ({code}): {message} Rephrase the prompt "
                f"(clinical, non-identifying wording) and run again."
            )
        if status == 401:
            return AuthenticationError(
                f"OpenAI rejected the API key (401: {message}). Check OPENAI_API_KEY "
                f"(and OPENAI_BASE_URL if you set it)."
            )
        if status == 403:
            return AuthenticationError(
                f"OpenAI denied access to {self.model} (403: {message}). Your organisation "
                f"may need verification for this model; try another --model."
            )
        if code in NO_RETRY_CODES:
            return BudgetExceededError(f"OpenAI account quota exhausted ({code}): {message} Check billing.")
        return ProviderError(f"OpenAI images request failed (HTTP {status}, {code or 'no code'}): {message}")

    # Decoding.

    def _decode(self, payload: dict[str, Any], *, prompt: str, body: dict[str, Any]) -> list[GeneratedImage]:
        items = payload.get("data") or []
        if len(items) != body["n"]:
            raise ProviderError(f"OpenAI returned {len(items)} images where {body['n']} were asked for.")
        parameters = {k: v for k, v in body.items() if k not in ("prompt", "model", "n")}
        out = []
        for item in items:
            if "b64_json" not in item:
                raise ProviderError(
                    "OpenAI returned an image URL instead of base64 data; this client asks for "
                    "b64_json and downloads nothing. Check --base-url points at the Images API."
                )
            with Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))) as img:
                img.load()
                image = img.copy()
            out.append(
                GeneratedImage(
                    image=image,
                    prompt=prompt,
                    provider=self.name,
                    model=self.model,
                    seed=None,
                    parameters=parameters,
                    revised_prompt=item.get("revised_prompt"),
                )
            )
        return out


def _error_fields(response: httpx.Response) -> tuple[str | None, str]:
    """(error code, message) from an OpenAI error body, tolerating non-JSON bodies."""
    try:
        error = response.json().get("error") or {}
    except ValueError:
        return None, response.text[:300]
    return error.get("code") or error.get("type"), str(error.get("message", "")).strip()


def _retry_after_s(response: httpx.Response) -> float | None:
    """Seconds asked by `retry-after-ms` or `Retry-After` (seconds or an HTTP date), if any."""
    if (ms := response.headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None
