"""The domain encoder: a small CNN classifier trained on the real training split, cached, used as a feature extractor.

It is the offline default extractor: no download, trained in about a minute on CPU, and tuned to
the user's own modality (ImageNet Inception features say little about chest X-rays). Features are
its penultimate layer (global average pool). The trained weights are cached under
`<cache_dir>/domain_encoder/<key>/` where `key` hashes the training images, labels, classes and
settings, with `training.json` recording epochs, losses and validation accuracy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from synthmed.data.arrays import ImageArrays
from synthmed.evaluate.features import default_cache_dir, run_batched
from synthmed.files import atomic_write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncoderSettings:
    """How the domain encoder is built and trained (part of its cache key)."""

    input_size_px: int = 64
    width: int = 16
    feature_dim: int = 128
    epochs: int = 4
    batch_size: int = 64
    learning_rate: float = 2e-3
    max_shift_px: int = 4
    seed: int = 0
    architecture: str = "patch4-cnn3-groupnorm-v1"  # part of the cache key: bump when DomainEncoder changes
    bf16: bool = False  # bf16 autocast: faster only on CPUs with native bf16 (AVX512-BF16/AMX); 6x slower on AVX2

    def __post_init__(self) -> None:
        if self.input_size_px < 8 or self.epochs < 1 or self.width < 4 or self.feature_dim < 4:
            raise ValueError(f"EncoderSettings out of range: {self} (input_size_px>=8, epochs>=1, width>=4).")


def _norm(channels: int) -> nn.Module:
    # GroupNorm, not BatchNorm: identical in training and evaluation, so short trainings give usable features.
    return nn.GroupNorm(min(8, channels // 2), channels)


class DomainEncoder(nn.Module):
    """A patchify stem (4x4, stride 4) then three 3x3 conv blocks (2w, 4w, feature_dim; two of stride 2), GroupNorm,
    global average pool, linear classifier: about 5 M multiply-adds per 64 px image, so it trains in minutes on CPU."""

    def __init__(self, *, channels: int, num_classes: int, width: int = 32, feature_dim: int = 128):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=4, bias=False),
            _norm(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
            _norm(2 * width),
            nn.ReLU(),
            nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1, bias=False),
            _norm(4 * width),
            nn.ReLU(),
            nn.Conv2d(4 * width, feature_dim, 3, padding=1, bias=False),
            _norm(feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features `[N, feature_dim]` of images in [-1, 1]."""
        return F.adaptive_avg_pool2d(self.body(x), 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _prepare(batch_uint8: torch.Tensor, size_px: int) -> torch.Tensor:
    x = batch_uint8.float() / 127.5 - 1.0
    if x.shape[-1] != size_px or x.shape[-2] != size_px:
        x = F.interpolate(x, size=(size_px, size_px), mode="bilinear", align_corners=False, antialias=True)
    return x


def _random_shift(x: torch.Tensor, max_shift_px: int, generator: torch.Generator) -> torch.Tensor:
    if max_shift_px <= 0:
        return x
    size = x.shape[-1]
    padded = F.pad(x, (max_shift_px,) * 4, mode="replicate")
    dy, dx = torch.randint(0, 2 * max_shift_px + 1, (2,), generator=generator).tolist()
    return padded[..., dy : dy + size, dx : dx + size]


def cache_key(train: ImageArrays, settings: EncoderSettings) -> str:
    """Hash of the training images, labels, class names and settings (the cache folder name)."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"settings": asdict(settings), "classes": train.classes}, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(train.pixels).tobytes())
    digest.update(np.ascontiguousarray(train.labels).tobytes())
    return digest.hexdigest()[:20]


def _accuracy(model: DomainEncoder, data: ImageArrays, size_px: int) -> float:
    model.eval()
    logits = run_batched(lambda b: model(_prepare(b, size_px)), data.pixels, batch_size=256)
    return float((logits.argmax(1) == data.labels).mean())


def train_domain_encoder(
    train: ImageArrays, val: ImageArrays | None, *, settings: EncoderSettings
) -> tuple[DomainEncoder, dict]:
    """Train the encoder on `train` (random shifts as augmentation); returns the model and its training record."""
    if len(train) < 2:
        raise ValueError(f"the domain encoder needs at least 2 real training images; got {len(train)}.")
    generator = torch.Generator().manual_seed(settings.seed)
    with torch.random.fork_rng(devices=[]):  # seeded parameter init without touching the caller's RNG
        torch.manual_seed(settings.seed)
        model = DomainEncoder(
            channels=train.pixels.shape[1],
            num_classes=len(train.classes),
            width=settings.width,
            feature_dim=settings.feature_dim,
        )
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate, weight_decay=1e-4)
    steps_per_epoch = max(1, int(np.ceil(len(train) / settings.batch_size)))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=settings.learning_rate, total_steps=settings.epochs * steps_per_epoch
    )
    pixels = torch.from_numpy(train.pixels)
    labels = torch.from_numpy(train.labels)
    # Weight classes by inverse frequency so an imbalanced split still yields class-aware features.
    counts = torch.bincount(labels, minlength=len(train.classes)).float().clamp(min=1)
    class_weight = counts.sum() / (len(counts) * counts)
    started = time.perf_counter()
    losses = []
    progress = tqdm(range(settings.epochs), desc="domain encoder", unit="epoch", leave=False)
    for _epoch in progress:
        model.train()
        order = torch.randperm(len(train), generator=generator)
        total = 0.0
        for start in range(0, len(order), settings.batch_size):
            index = order[start : start + settings.batch_size]
            x = _random_shift(_prepare(pixels[index], settings.input_size_px), settings.max_shift_px, generator)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=settings.bf16):
                loss = F.cross_entropy(model(x).float(), labels[index], weight=class_weight)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(index)
        losses.append(total / len(train))
        progress.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    record = {
        "settings": asdict(settings),
        "classes": list(train.classes),
        "n_train": len(train),
        "n_val": len(val) if val is not None else 0,
        "epochs": settings.epochs,
        "train_loss_per_epoch": losses,
        "train_accuracy": _accuracy(model, train, settings.input_size_px),
        "val_accuracy": _accuracy(model, val, settings.input_size_px) if val is not None and len(val) else None,
        "train_duration_s": round(time.perf_counter() - started, 2),
    }
    log.info(
        "domain encoder: %d epochs, train acc %.3f, val acc %s",
        settings.epochs,
        record["train_accuracy"],
        record["val_accuracy"],
    )
    return model, record


class DomainExtractor:
    """Penultimate-layer features of a trained DomainEncoder (the FeatureExtractor protocol)."""

    name = "domain"
    resize_method = "bilinear with antialias (torch interpolate)"

    def __init__(self, model: DomainEncoder, *, settings: EncoderSettings, record: dict, batch_size: int = 256):
        self.model = model.eval()
        self.settings = settings
        self.record = record
        self.input_size_px = settings.input_size_px
        self.layer = (
            f"penultimate (global average pool, {settings.feature_dim}-d) of a CNN trained on the real train split"
        )
        self.batch_size = batch_size

    def __call__(self, pixels_uint8: np.ndarray | torch.Tensor) -> np.ndarray:
        return run_batched(
            lambda b: self.model.features(_prepare(b, self.input_size_px)), pixels_uint8, batch_size=self.batch_size
        )


def load_or_train_domain_extractor(
    train: ImageArrays,
    val: ImageArrays | None,
    *,
    settings: EncoderSettings | None = None,
    cache_dir: str | Path | None = None,
) -> DomainExtractor:
    """The cached encoder for exactly these training images and settings, trained (and cached) if absent."""
    settings = settings or EncoderSettings()
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = folder / "domain_encoder" / cache_key(train, settings)
    weights, record_path = folder / "model.safetensors", folder / "training.json"
    model = DomainEncoder(
        channels=train.pixels.shape[1],
        num_classes=len(train.classes),
        width=settings.width,
        feature_dim=settings.feature_dim,
    )
    if weights.is_file() and record_path.is_file():
        model.load_state_dict(load_file(weights))
        record = json.loads(record_path.read_text()) | {"cached": True, "cache_dir": str(folder)}
        log.info("domain encoder loaded from cache %s", folder)
        return DomainExtractor(model, settings=settings, record=record)
    model, record = train_domain_encoder(train, val, settings=settings)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".model.safetensors.tmp"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(weights)
    atomic_write_json(record_path, record)
    return DomainExtractor(model, settings=settings, record=record | {"cached": False, "cache_dir": str(folder)})
