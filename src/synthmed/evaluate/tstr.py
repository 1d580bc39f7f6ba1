"""Usefulness: train on real (TRTR), synthetic (TSTR) or both, test on real; metrics with CIs."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator
from tqdm.auto import tqdm

from synthmed.data.arrays import ImageArrays
from synthmed.data.dataset import to_model_range
from synthmed.evaluate.classifiers import (
    Arch,
    ImageClassifier,
    augment_batch,
    build_classifier,
    built_arch,
    imagenet_weights_filename,
    predict_proba,
)
from synthmed.evaluate.tstr_metrics import METRICS, bootstrap, classification_metrics, condition_results, ratios
from synthmed.evaluate.tstr_outputs import plot_confusions, plot_scores, save_classifier, write_tables
from synthmed.evaluate.tstr_verdict import (
    attach_rests_on,
    flag_test_contamination,
    rests_on,
    tstr_verdict,
    weights_description,
)
from synthmed.files import atomic_write_json
from synthmed.models.device import resolve_device

log = logging.getLogger(__name__)

Condition = Literal["real", "synthetic", "real+synthetic"]
__all__ = [
    "METRICS",
    "TSTRConfig",
    "classification_metrics",
    "fit_classifier",
    "run_tstr",
    "train_reference_classifier",
    "tstr_verdict",
]


def distinct(values: tuple, *, what: str) -> tuple:
    """`values` when each appears once and seeds are >= 0: a repeated seed would fake an interval over seeds."""
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{what} lists {', '.join(repeated)} more than once; give each once")
    if what.endswith("seeds") and any(v < 0 for v in values):
        raise ValueError(f"{what} must be >= 0 (numpy and torch seeds)")
    return values


class TSTRConfig(BaseModel):
    """How the usefulness classifiers are trained and scored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    archs: tuple[Arch, ...] = Field(default=("small_cnn",), min_length=1)
    seeds: tuple[int, ...] = Field(default=(0, 1, 2), min_length=1)
    conditions: tuple[Condition, ...] = ("real", "synthetic", "real+synthetic")
    epochs: int = Field(default=20, gt=0)
    min_steps: int = Field(default=150, ge=0, description="at least this many batches (small sets get more epochs)")
    patience_epochs: int = Field(default=6, gt=0, description="stop after this many epochs without val gain")
    model_selection: Literal["real_val", "last_epoch"] = Field(
        default="last_epoch",
        description="last_epoch (default): never look at real labels while training, so "
        "TSTR is trained on synthetic data alone; real_val: keep the epoch best on "
        "real val (lets real labels steer TSTR: a label-shuffled set scored 0.63 "
        "instead of 0.47 balanced accuracy in bench/results/report.md)",
    )
    batch_size: int = Field(default=64, gt=1)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    image_size_px: int = Field(default=64, ge=8)
    weights_dir: Path | None = Field(default=None, description="folder with torchvision's ImageNet .pth files")

    augment_shift_px: int = Field(default=2, ge=0)
    augment_hflip: bool = Field(default=False, description="off by default: left/right matters in chest images")
    max_train_images: int | None = Field(default=None, gt=1, description="seeded random cap per training set")
    balance_classes: bool = Field(default=True, description="class-weighted loss for imbalanced sets")
    bf16_autocast: bool = Field(default=False, description="faster for the torchvision archs, slower for small_cnn")
    device: str = Field(default="auto", description="where classifiers train: auto (CUDA if visible), cpu, cuda:N")
    small_cnn_width: int = Field(default=32, gt=0)
    vgg_recipe: bool = Field(
        default=True,
        description="vgg19 without ImageNet weights trains as vgg19_bn with a global-average-pool head "
        "(classifiers.VGG_SCRATCH); False keeps plain VGG-19, which stays at chance from scratch",
    )
    bootstrap_samples: int = Field(default=500, ge=10)
    save_classifiers: Literal["all", "first_seed", "none"] = Field(
        default="first_seed",
        description="write trained classifiers (safetensors + JSON) under usefulness/classifiers/ARCH/: "
        "every one, those of the first seed (enough for condition fidelity and "
        "explanations to reuse), or none; ResNet-50 ~95 MB each, VGG-19 ~550 MB",
    )

    @field_validator("seeds", "archs")
    @classmethod
    def _distinct(cls, values: tuple, info) -> tuple:
        return distinct(values, what=info.field_name)


# Data.


def _as_tensor(arrays: ImageArrays, *, size_px: int, channels: int) -> torch.Tensor:
    x = to_model_range(torch.from_numpy(np.ascontiguousarray(arrays.pixels)))
    if x.shape[1] != channels:
        x = x.mean(dim=1, keepdim=True) if channels == 1 else x.expand(-1, channels, -1, -1).contiguous()
    if x.shape[-2:] != (size_px, size_px):
        x = F.interpolate(x, size=(size_px, size_px), mode="bilinear", align_corners=False)
    return x


def _check_sets(real_train: ImageArrays, others: dict[str, ImageArrays | None]) -> None:
    if len(real_train.classes) < 2:
        raise ValueError(f"Usefulness needs at least 2 classes; the real data has {real_train.classes}.")
    for name, arrays in others.items():
        if arrays is None:
            continue
        if len(arrays) == 0:
            raise ValueError(f"The {name} image set is empty; nothing to train or test on.")
        if list(arrays.classes) != list(real_train.classes):
            raise ValueError(
                f"The {name} set's classes {arrays.classes} differ from the real training classes "
                f"{real_train.classes}; load it with classes=<the real dataset's classes>."
            )


# Training.


def _weights_path(arch: str, config: TSTRConfig) -> Path | None:
    if arch == "small_cnn" or config.weights_dir is None:
        return None
    return Path(config.weights_dir) / imagenet_weights_filename(arch)


def images_used(n_images: int, config: TSTRConfig) -> int:
    """How many of `n_images` a classifier trains on (config.max_train_images caps each training set)."""
    return min(n_images, config.max_train_images) if config.max_train_images is not None else n_images


def fit_classifier(
    train: ImageArrays,
    val: ImageArrays | None,
    *,
    arch: str,
    config: TSTRConfig,
    seed: int,
    in_channels: int | None = None,
) -> ImageClassifier:
    """Train one classifier (seeded; keeps the epoch with the best real-val balanced accuracy)."""
    in_channels = in_channels or int(train.pixels.shape[1])
    num_classes = len(train.classes)
    device = resolve_device(config.device)
    cuda = [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):  # dropout and init draw from a seeded, restored global RNG
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        x = _as_tensor(train, size_px=config.image_size_px, channels=in_channels)
        y = torch.from_numpy(np.asarray(train.labels, dtype=np.int64))
        if config.max_train_images is not None and len(y) > config.max_train_images:
            keep = torch.randperm(len(y), generator=generator)[: config.max_train_images]
            x, y = x[keep], y[keep]
        weights_path = _weights_path(arch, config)
        net = build_classifier(
            arch,
            num_classes=num_classes,
            in_channels=in_channels,
            weights_path=weights_path,
            small_cnn_width=config.small_cnn_width,
            vgg_recipe=config.vgg_recipe,
        )
        built = built_arch(arch, has_weights=weights_path is not None, vgg_recipe=config.vgg_recipe)
        if built != arch:
            log.info("%s without ImageNet weights trains as %s (plain VGG-19 stays at chance)", arch, built)
        model = ImageClassifier(
            net, arch=built, classes=train.classes, in_channels=in_channels, image_size_px=config.image_size_px
        )
        model.to(device)
        counts = torch.bincount(y, minlength=num_classes).float()
        class_weight = torch.where(counts > 0, len(y) / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))
        class_weight = class_weight.to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        steps_per_epoch = max(1, len(y) // config.batch_size + (len(y) % config.batch_size > 1))
        epochs = max(config.epochs, -(-config.min_steps // steps_per_epoch))
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, pct_start=0.15, total_steps=epochs * steps_per_epoch
        )
        check_every = max(1, epochs // config.epochs)  # val checks at the configured epoch cadence
        best_score, best_state, stale, steps_done = -1.0, None, 0, 0
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(y), generator=generator)
            for start in range(0, len(y), config.batch_size):
                index = order[start : start + config.batch_size]
                if len(index) < 2:  # BatchNorm cannot train on one image
                    continue
                xb = augment_batch(
                    x[index], shift_px=config.augment_shift_px, hflip=config.augment_hflip, generator=generator
                )
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16_autocast):
                    logits = model(xb.to(device))
                weight = class_weight if config.balance_classes else None
                loss = F.cross_entropy(logits.float(), y[index].to(device), weight=weight)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                steps_done += 1
                if schedule.last_epoch < schedule.total_steps - 1:
                    schedule.step()
            last = epoch == epochs - 1
            if (
                val is not None
                and len(val)
                and config.model_selection == "real_val"
                and ((epoch + 1) % check_every == 0 or last)
            ):
                score = classification_metrics(val.labels, predict_proba(model, val.pixels), num_classes)
                if score["balanced_accuracy"] >= best_score:  # ties keep the later, longer-trained model
                    stale = 0 if score["balanced_accuracy"] > best_score else stale + 1
                    best_score, best_state = score["balanced_accuracy"], copy.deepcopy(model.state_dict())
                else:
                    stale += 1
                if stale >= config.patience_epochs and steps_done >= config.min_steps:
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
    return model.cpu().eval()  # explanations and scoring run on CPU


def train_reference_classifier(
    real_train: ImageArrays, real_val: ImageArrays | None, *, config: TSTRConfig
) -> torch.nn.Module:
    """A classifier trained on real images only (first arch and seed), for condition fidelity and explanations."""
    _check_sets(real_train, {"real validation": real_val})
    return fit_classifier(real_train, real_val, arch=config.archs[0], config=config, seed=config.seeds[0])


# Experiment.


def run_tstr(
    *,
    real_train: ImageArrays,
    real_val: ImageArrays | None,
    real_test: ImageArrays,
    synthetic: ImageArrays,
    config: TSTRConfig,
    out_dir: Path,
) -> dict:
    """Train each arch x condition x seed, test on `real_test`; returns the "usefulness" section.

    Also writes out_dir/tstr.json, results.csv, results.tex, the figures, and (config.save_classifiers)
    every classifier as classifiers/ARCH/<condition>-seed<S>.safetensors with a .json beside it.
    """
    _check_sets(real_train, {"synthetic": synthetic, "real test": real_test, "real validation": real_val})
    out_dir = Path(out_dir)
    classes = list(real_train.classes)
    num_classes, channels = len(classes), int(real_train.pixels.shape[1])
    train_sets = {
        "real": real_train,
        "synthetic": synthetic,
        "real+synthetic": _concat(real_train, synthetic, size_px=config.image_size_px, channels=channels),
    }
    runs = [(a, c, s) for a in config.archs for c in config.conditions for s in config.seeds]
    probas: dict[str, dict[str, list[np.ndarray]]] = {a: {c: [] for c in config.conditions} for a in config.archs}
    saved = []
    for arch, cond, seed in tqdm(runs, desc="usefulness (TSTR)", unit="model"):
        model = fit_classifier(train_sets[cond], real_val, arch=arch, config=config, seed=seed, in_channels=channels)
        probas[arch][cond].append(predict_proba(model, real_test.pixels))
        score = classification_metrics(real_test.labels, probas[arch][cond][-1], num_classes)["balanced_accuracy"]
        log.info("TSTR %s trained on %s (seed %d): test balanced accuracy %.3f", arch, cond, seed, score)
        if config.save_classifiers == "all" or (config.save_classifiers == "first_seed" and seed == config.seeds[0]):
            saved.append(
                _save(
                    model,
                    out_dir,
                    arch=arch,
                    cond=cond,
                    seed=seed,
                    config=config,
                    n_train=images_used(len(train_sets[cond]), config),
                    score=score,
                )
            )
    results, arch_ratios = {}, {}
    for arch in config.archs:
        boot = bootstrap(
            real_test.labels, probas[arch], num_classes, samples=config.bootstrap_samples, seed=config.seeds[0]
        )
        results[arch] = {
            cond: condition_results(real_test.labels, per_seed, boot[cond], classes, list(config.seeds))
            for cond, per_seed in probas[arch].items()
        }
        arch_ratios[arch] = ratios(results[arch], boot)
    n_train: dict[str, int] = {c: images_used(len(train_sets[c]), config) for c in config.conditions}
    section: dict[str, Any] = {
        "test_images": len(real_test),
        "train_images": n_train,
        "config": config.model_dump(mode="json"),
        "rests_on": rests_on(
            archs=config.archs,
            weights_dir=config.weights_dir,
            image_size_px=config.image_size_px,
            seeds=config.seeds,
            vgg_recipe=config.vgg_recipe,
            n_train=n_train,
            n_test=len(real_test),
        ),
        "results": results,
        "ratios": arch_ratios,
        "classifiers": saved,
        "figures": [
            {
                "title": "Real-test scores of classifiers trained on real, synthetic, or both (95% CI)",
                "path": plot_scores(results, out_dir / "tstr.png", out_dir),
            }
        ],
    }
    for arch in config.archs:
        section["figures"].append(
            {
                "title": f"{arch}: real-test confusion matrices, summed over seeds",
                "path": plot_confusions(
                    results[arch], classes, arch=arch, path=out_dir / f"confusion_{arch}.png", out_dir=out_dir
                ),
            }
        )
    section.update(tstr_verdict(section))
    flag_test_contamination(section, synthetic=synthetic, test=real_test)
    attach_rests_on(section, section["rests_on"])
    section["tables"] = write_tables(section, classes, out_dir)
    atomic_write_json(out_dir / "tstr.json", section)
    return section


def _save(
    model: ImageClassifier,
    out_dir: Path,
    *,
    arch: str,
    cond: str,
    seed: int,
    config: TSTRConfig,
    n_train: int,
    score: float,
) -> dict:
    paths = save_classifier(
        model,
        out_dir / "classifiers" / arch,
        condition=cond,
        seed=seed,
        small_cnn_width=config.small_cnn_width,
        extra={
            "initial_weights": weights_description(arch, config.weights_dir, vgg_recipe=config.vgg_recipe),
            "n_train_images": n_train,
            "real_test_balanced_accuracy": score,
            "tstr_config": config.model_dump(mode="json"),
        },
    )
    return {
        "arch": arch,
        "train_set": cond,
        "seed": seed,
        **{k: v.relative_to(out_dir.parent).as_posix() for k, v in paths.items()},
    }


def _concat(a: ImageArrays, b: ImageArrays, *, size_px: int, channels: int) -> ImageArrays:
    def prep(arrays: ImageArrays) -> np.ndarray:
        x = _as_tensor(arrays, size_px=size_px, channels=channels)
        return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()

    return ImageArrays(
        np.concatenate([prep(a), prep(b)]), np.concatenate([a.labels, b.labels]), a.classes, [*a.ids, *b.ids]
    )
