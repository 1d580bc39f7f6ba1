"""Usefulness: train on real (TRTR), synthetic (TSTR) or both, test on real; metrics with CIs."""

from __future__ import annotations

import copy
import io
import logging
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import rankdata
from tqdm.auto import tqdm

from synthmed.data.arrays import ImageArrays
from synthmed.data.dataset import to_model_range
from synthmed.evaluate.classifiers import Arch, ImageClassifier, augment_batch, build_classifier, \
    imagenet_weights_filename, predict_proba
from synthmed.files import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

Condition = Literal["real", "synthetic", "real+synthetic"]
METRICS = ("accuracy", "balanced_accuracy", "macro_auc")
CONDITION_LABELS = {"real": "train real (TRTR)", "synthetic": "train synthetic (TSTR)",
                    "real+synthetic": "train real + synthetic"}


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
        default="last_epoch", description="last_epoch (default): never look at real labels while training, so "
                                          "TSTR is trained on synthetic data alone; real_val: keep the epoch best on "
                                          "real val (lets real labels steer TSTR: a label-shuffled set scored 0.63 "
                                          "instead of 0.47 balanced accuracy in bench/results/report.md)")
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
    small_cnn_width: int = Field(default=32, gt=0)
    bootstrap_samples: int = Field(default=500, ge=10)


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
            raise ValueError(f"The {name} set's classes {arrays.classes} differ from the real training classes "
                             f"{real_train.classes}; load it with classes=<the real dataset's classes>.")


# Training.

def _weights_path(arch: str, config: TSTRConfig) -> Path | None:
    if arch == "small_cnn" or config.weights_dir is None:
        return None
    return Path(config.weights_dir) / imagenet_weights_filename(arch)


def fit_classifier(train: ImageArrays, val: ImageArrays | None, *, arch: str, config: TSTRConfig, seed: int,
                   in_channels: int | None = None) -> ImageClassifier:
    """Train one classifier (seeded; keeps the epoch with the best real-val balanced accuracy)."""
    in_channels = in_channels or int(train.pixels.shape[1])
    num_classes = len(train.classes)
    with torch.random.fork_rng(devices=[]):  # dropout and init draw from a seeded, restored global RNG
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        x = _as_tensor(train, size_px=config.image_size_px, channels=in_channels)
        y = torch.from_numpy(np.asarray(train.labels, dtype=np.int64))
        if config.max_train_images is not None and len(y) > config.max_train_images:
            keep = torch.randperm(len(y), generator=generator)[:config.max_train_images]
            x, y = x[keep], y[keep]
        weights_path = _weights_path(arch, config)
        if arch == "vgg19" and weights_path is None:
            log.warning("vgg19 from scratch (no ImageNet weights): it has no batch norm and can stay at chance for "
                        "many epochs (PneumoniaMNIST 32 px, 5 epochs: balanced accuracy 0.50); give "
                        "--tstr-weights-dir with %s for a meaningful VGG-19 result.", imagenet_weights_filename(arch))
        net = build_classifier(arch, num_classes=num_classes, in_channels=in_channels,
                               weights_path=weights_path, small_cnn_width=config.small_cnn_width)
        model = ImageClassifier(net, arch=arch, classes=train.classes, in_channels=in_channels,
                                image_size_px=config.image_size_px)
        counts = torch.bincount(y, minlength=num_classes).float()
        class_weight = torch.where(counts > 0, len(y) / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        steps_per_epoch = max(1, len(y) // config.batch_size + (len(y) % config.batch_size > 1))
        epochs = max(config.epochs, -(-config.min_steps // steps_per_epoch))
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, pct_start=0.15,
                                                       total_steps=epochs * steps_per_epoch)
        check_every = max(1, epochs // config.epochs)  # val checks at the configured epoch cadence
        best_score, best_state, stale, steps_done = -1.0, None, 0, 0
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(len(y), generator=generator)
            for start in range(0, len(y), config.batch_size):
                index = order[start:start + config.batch_size]
                if len(index) < 2:  # BatchNorm cannot train on one image
                    continue
                xb = augment_batch(x[index], shift_px=config.augment_shift_px, hflip=config.augment_hflip,
                                   generator=generator)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16_autocast):
                    logits = model(xb)
                weight = class_weight if config.balance_classes else None
                loss = F.cross_entropy(logits.float(), y[index], weight=weight)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                steps_done += 1
                if schedule.last_epoch < schedule.total_steps - 1:
                    schedule.step()
            last = epoch == epochs - 1
            if val is not None and len(val) and config.model_selection == "real_val" and (
                    (epoch + 1) % check_every == 0 or last):
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
    return model.eval()


def train_reference_classifier(real_train: ImageArrays, real_val: ImageArrays | None, *,
                               config: TSTRConfig) -> torch.nn.Module:
    """A classifier trained on real images only (first arch and seed), for condition fidelity and explanations."""
    _check_sets(real_train, {"real validation": real_val})
    return fit_classifier(real_train, real_val, arch=config.archs[0], config=config, seed=config.seeds[0])


# Metrics.

def _binary_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney AUC (ties count half), the same number as sklearn's roc_auc_score."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, num_classes: int) -> dict:
    """Accuracy, balanced accuracy, macro one-vs-rest AUC and per-class recall (None for absent classes)."""
    y_true = np.asarray(y_true)
    pred = proba.argmax(axis=1)
    recall, aucs = [], []
    for k in range(num_classes):
        positive = y_true == k
        recall.append(float((pred[positive] == k).mean()) if positive.any() else None)
        if positive.any() and not positive.all():
            aucs.append(_binary_auc(positive, proba[:, k]))
    present = [r for r in recall if r is not None]
    return {"accuracy": float((pred == y_true).mean()), "balanced_accuracy": float(np.mean(present)),
            "macro_auc": float(np.mean(aucs)) if aucs else None, "per_class_recall": recall}


def _summary(per_seed: list[float | None], boot: np.ndarray) -> dict:
    values = [v for v in per_seed if v is not None]
    boot = boot[np.isfinite(boot)]
    return {"mean": float(np.mean(values)) if values else None,
            "ci_low": float(np.percentile(boot, 2.5)) if boot.size else None,
            "ci_high": float(np.percentile(boot, 97.5)) if boot.size else None,
            "std_over_seeds": float(np.std(values)) if len(values) > 1 else 0.0,
            "per_seed": per_seed}


def _bootstrap(y: np.ndarray, probas: dict[str, list[np.ndarray]], num_classes: int, *, samples: int,
               seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Seed-mean metrics over `samples` resamples of the test images (the same resamples for every condition)."""
    rng = np.random.default_rng(seed)
    names = [*METRICS, *(f"recall_{k}" for k in range(num_classes))]
    out = {cond: {name: np.full(samples, np.nan) for name in names} for cond in probas}
    for b in range(samples):
        index = rng.integers(0, len(y), len(y))
        for cond, per_seed in probas.items():
            results = [classification_metrics(y[index], p[index], num_classes) for p in per_seed]
            for name in METRICS:
                vals = [r[name] for r in results if r[name] is not None]
                out[cond][name][b] = np.mean(vals) if vals else np.nan
            for k in range(num_classes):
                vals = [r["per_class_recall"][k] for r in results if r["per_class_recall"][k] is not None]
                out[cond][f"recall_{k}"][b] = np.mean(vals) if vals else np.nan
    return out


def _ratio(top: dict, bottom: dict, boot_top: np.ndarray, boot_bottom: np.ndarray) -> dict:
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = boot_top / boot_bottom
    boot = boot[np.isfinite(boot)]
    mean = top["mean"] / bottom["mean"] if top["mean"] is not None and bottom["mean"] else None
    return {"mean": mean, "ci_low": float(np.percentile(boot, 2.5)) if boot.size else None,
            "ci_high": float(np.percentile(boot, 97.5)) if boot.size else None}


# Experiment.

def run_tstr(*, real_train: ImageArrays, real_val: ImageArrays | None, real_test: ImageArrays,
             synthetic: ImageArrays, config: TSTRConfig, out_dir: Path) -> dict:
    """Train each arch x condition x seed, test on `real_test`; returns the "usefulness" section."""
    _check_sets(real_train, {"synthetic": synthetic, "real test": real_test, "real validation": real_val})
    out_dir = Path(out_dir)
    num_classes, channels = len(real_train.classes), int(real_train.pixels.shape[1])
    train_sets = {"real": real_train, "synthetic": synthetic,
                  "real+synthetic": _concat(real_train, synthetic, size_px=config.image_size_px, channels=channels)}
    runs = [(a, c, s) for a in config.archs for c in config.conditions for s in config.seeds]
    probas: dict[str, dict[str, list[np.ndarray]]] = {a: {c: [] for c in config.conditions} for a in config.archs}
    for arch, cond, seed in tqdm(runs, desc="usefulness (TSTR)", unit="model"):
        model = fit_classifier(train_sets[cond], real_val, arch=arch, config=config, seed=seed, in_channels=channels)
        probas[arch][cond].append(predict_proba(model, real_test.pixels))
        log.info("TSTR %s trained on %s (seed %d): test balanced accuracy %.3f", arch, cond, seed,
                 classification_metrics(real_test.labels, probas[arch][cond][-1], num_classes)["balanced_accuracy"])
    results, ratios = {}, {}
    for arch in config.archs:
        boot = _bootstrap(real_test.labels, probas[arch], num_classes, samples=config.bootstrap_samples,
                          seed=config.seeds[0])
        results[arch] = {}
        for cond, per_seed in probas[arch].items():
            scores = [classification_metrics(real_test.labels, p, num_classes) for p in per_seed]
            entry = {m: _summary([s[m] for s in scores], boot[cond][m]) for m in METRICS}
            entry["per_class_recall"] = {
                name: _summary([s["per_class_recall"][k] for s in scores], boot[cond][f"recall_{k}"])
                for k, name in enumerate(real_train.classes)}
            results[arch][cond] = entry
        ratios[arch] = _ratios(results[arch], boot)
    section = {
        "test_images": len(real_test), "train_images": {c: len(train_sets[c]) for c in config.conditions},
        "config": config.model_dump(mode="json"), "results": results, "ratios": ratios,
        "figures": [{"title": "Real-test scores of classifiers trained on real, synthetic, or both (95% CI)",
                     "path": _plot(results, out_dir / "tstr.png", out_dir)}],
    }
    section.update(tstr_verdict(section, arch=config.archs[0]))
    atomic_write_json(out_dir / "tstr.json", section)
    return section


def _concat(a: ImageArrays, b: ImageArrays, *, size_px: int, channels: int) -> ImageArrays:
    def prep(arrays: ImageArrays) -> np.ndarray:
        x = _as_tensor(arrays, size_px=size_px, channels=channels)
        return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    return ImageArrays(np.concatenate([prep(a), prep(b)]), np.concatenate([a.labels, b.labels]), a.classes,
                       [*a.ids, *b.ids])


def _ratios(results: dict, boot: dict) -> dict:
    pairs = {"tstr_over_trtr": ("synthetic", "real"), "augmented_over_trtr": ("real+synthetic", "real")}
    return {name: {m: _ratio(results[top][m], results[bottom][m], boot[top][m], boot[bottom][m]) for m in METRICS}
            for name, (top, bottom) in pairs.items() if top in results and bottom in results}


def tstr_verdict(section: dict, *, arch: str) -> dict:
    """Verdict and status of the usefulness section from `arch`'s balanced accuracies.

    The TSTR/TRTR ratio only means something when the real-trained classifier learned: if its
    balanced accuracy is not clearly above chance (its 95% interval reaches chance, or without an
    interval it is within 0.05 of chance), the verdict says so instead of calling a 0.50/0.50 "good".
    """
    res = section["results"][arch]
    ratio = section["ratios"].get(arch, {}).get("tstr_over_trtr", {}).get("balanced_accuracy", {}).get("mean")
    if ratio is None:
        return {"verdict": "Usefulness was not compared with real-only training (no ratio).", "status": "info"}
    real, synth = res["real"]["balanced_accuracy"]["mean"], res["synthetic"]["balanced_accuracy"]["mean"]
    chance = 1.0 / len(res["real"]["per_class_recall"])
    real_low = res["real"]["balanced_accuracy"].get("ci_low")
    if (real_low if real_low is not None else real - 0.05) <= chance:
        text = (f"Inconclusive: the {arch} classifier trained on real images did not learn (balanced accuracy "
                f"{real:.2f}, chance {chance:.2f}), so comparing synthetic-trained ones with it says nothing. "
                f"Train longer (--tstr-epochs), choose another arch, or give ImageNet weights (--tstr-weights-dir).")
        return {"verdict": text, "status": "info", "tstr_over_trtr_balanced_accuracy": ratio}
    status = "good" if ratio >= 0.9 else "fair" if ratio >= 0.75 else "poor"
    text = (f"A classifier trained only on synthetic images reaches {ratio:.0%} of the balanced accuracy of one "
            f"trained on real images ({synth:.2f} vs {real:.2f} on {section['test_images']} real test images).")
    if "real+synthetic" in res:
        gain = res["real+synthetic"]["balanced_accuracy"]["mean"] - real
        text += f" Adding the synthetic images to the real ones changes it by {gain:+.2f}."
    return {"verdict": text, "status": status, "tstr_over_trtr_balanced_accuracy": ratio}


def _plot(results: dict, path: Path, out_dir: Path) -> str:
    from matplotlib.figure import Figure

    archs = list(results)
    fig = Figure(figsize=(4.2 * len(archs) + 1.5, 3.7), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(archs), sharey=True))
    colours = {"real": "#4C78A8", "synthetic": "#F58518", "real+synthetic": "#54A24B"}
    for ax, arch in zip(axes, archs):
        conds = list(results[arch])
        width = 0.8 / len(conds)
        for i, cond in enumerate(conds):
            stats = [results[arch][cond][m] for m in METRICS]
            means = [s["mean"] if s["mean"] is not None else np.nan for s in stats]
            low = [m - s["ci_low"] if s["ci_low"] is not None else 0 for m, s in zip(means, stats)]
            high = [s["ci_high"] - m if s["ci_high"] is not None else 0 for m, s in zip(means, stats)]
            ax.bar(np.arange(len(METRICS)) + (i - (len(conds) - 1) / 2) * width, means, width,
                   yerr=[np.maximum(low, 0), np.maximum(high, 0)], capsize=3, color=colours[cond],
                   label=CONDITION_LABELS[cond])
        ax.set_xticks(np.arange(len(METRICS)), ["accuracy", "balanced\naccuracy", "macro AUC"])
        ax.set_ylim(0, 1.05)
        ax.set_title(arch)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("score on real test images")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8, frameon=False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path).relative_to(Path(out_dir).parent).as_posix()
