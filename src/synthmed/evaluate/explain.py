"""Explanations: Grad-CAM and LIME maps of the real- and synthetic-trained classifiers on real and synthetic images."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from synthmed.data.arrays import ImageArrays
from synthmed.data.dataset import to_model_range
from synthmed.evaluate.classifiers import predict_proba
from synthmed.evaluate.tstr_metrics import classification_metrics
from synthmed.evaluate.tstr_verdict import attach_rests_on
from synthmed.files import atomic_write_bytes

log = logging.getLogger(__name__)

METHODS = ("gradcam", "lime")


def select_balanced(arrays: ImageArrays, count: int) -> np.ndarray:
    """Up to `count` row indices, taken class by class in turn (first images of each class first)."""
    queues = [list(np.flatnonzero(arrays.labels == k)) for k in range(len(arrays.classes))]
    chosen: list[int] = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(int(queue.pop(0)))
    return np.array(sorted(chosen, key=lambda i: (arrays.labels[i], i)), dtype=np.int64)


def gradcam_maps(
    model: torch.nn.Module, pixels: np.ndarray, labels: np.ndarray, *, target_layer: torch.nn.Module | None = None
) -> np.ndarray:
    """Grad-CAM maps [N, H, W] in [0, 1] for uint8 images [N, C, H, W], each for its class in `labels`."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layer = target_layer if target_layer is not None else getattr(model, "target_layer", None)
    if layer is None:
        raise ValueError(
            "Grad-CAM needs a target layer: pass target_layer=..., or a classifier from "
            "synthmed.evaluate.classifiers (ImageClassifier.target_layer)."
        )
    model.eval()
    x = to_model_range(torch.from_numpy(np.ascontiguousarray(pixels)))
    with GradCAM(model=model, target_layers=[layer]) as cam:
        maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(k)) for k in labels])
    return np.asarray(maps, dtype=np.float32)


def lime_maps(
    model: torch.nn.Module,
    pixels: np.ndarray,
    labels: np.ndarray,
    *,
    num_samples: int,
    batch_size: int = 64,
    seed: int = 0,
    desc: str = "LIME",
) -> np.ndarray:
    """LIME superpixel weights painted back onto pixels [N, H, W] (positive = supports the class)."""
    from lime import lime_image
    from lime.wrappers.scikit_image import SegmentationAlgorithm

    def classifier_fn(batch: np.ndarray) -> np.ndarray:  # [B, H, W, 3] in 0..255 -> [B, K]
        uint8 = np.clip(np.round(batch), 0, 255).astype(np.uint8).transpose(0, 3, 1, 2)
        return predict_proba(model, uint8, batch_size=batch_size)

    height, width = pixels.shape[-2:]
    segmenter = SegmentationAlgorithm(
        "slic", n_segments=int(np.clip(height * width // 16, 8, 64)), compactness=10, sigma=1, start_label=0
    )
    explainer = lime_image.LimeImageExplainer(random_state=seed)
    maps = []
    for image, label in tqdm(list(zip(pixels, labels)), desc=desc, unit="image"):
        rgb = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image
        explanation = explainer.explain_instance(
            rgb.transpose(1, 2, 0).astype(np.float64),
            classifier_fn,
            labels=(int(label),),
            top_labels=None,
            num_samples=num_samples,
            batch_size=batch_size,
            segmentation_fn=segmenter,
            random_seed=seed,
        )
        lookup = np.zeros(int(explanation.segments.max()) + 1, dtype=np.float32)
        for segment, weight in explanation.local_exp[int(label)]:
            lookup[segment] = weight
        maps.append(lookup[explanation.segments])
    return np.stack(maps)


def constant_maps(maps: np.ndarray, *, tolerance: float = 1e-6) -> np.ndarray:
    """Boolean [N]: maps that carry no spatial information (flat, or not finite anywhere)."""
    flat = maps.reshape(len(maps), -1)
    finite = np.isfinite(flat).all(axis=1)
    clean = np.where(np.isfinite(flat), flat, 0.0)
    spread = clean.max(axis=1) - clean.min(axis=1)
    scale = np.maximum(np.abs(clean).max(axis=1), 1.0)
    return ~finite | (spread <= tolerance * scale)


def feature_map_px(model, pixels: np.ndarray) -> list[int] | None:
    """Height and width of the feature map Grad-CAM reads (None when the model names no target layer)."""
    layer = getattr(model, "target_layer", None)
    if layer is None:
        return None
    seen: list = []
    handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[-2:])))
    try:
        predict_proba(model, pixels[:1])
    finally:
        handle.remove()
    return list(seen[0]) if seen else None


def _mean_map_correlation(real_maps, real_labels, synth_maps, synth_labels, classes) -> dict:
    """Per class: Pearson correlation of the class-average maps of two sets (None: class absent or a flat map)."""
    out: dict[str, float | None] = {}
    for k, name in enumerate(classes):
        a, b = real_maps[real_labels == k], synth_maps[synth_labels == k]
        if len(a) == 0 or len(b) == 0:
            out[name] = None
            continue
        a, b = a.mean(axis=0), b.mean(axis=0)
        if a.shape != b.shape:
            b = torch.nn.functional.interpolate(torch.from_numpy(b)[None, None], size=a.shape, mode="bilinear")[
                0, 0
            ].numpy()
        out[name] = float(np.corrcoef(a.ravel(), b.ravel())[0, 1]) if a.std() > 0 and b.std() > 0 else None
    return out


def _maps(method: str, model, arrays: ImageArrays, *, lime_num_samples: int, seed: int, desc: str) -> np.ndarray:
    if method == "gradcam":
        return gradcam_maps(model, arrays.pixels, arrays.labels)
    return lime_maps(model, arrays.pixels, arrays.labels, num_samples=lime_num_samples, seed=seed, desc=desc)


def _method_result(maps: dict, sets: dict, classes: list[str]) -> dict:
    """Real-vs-synthetic map correlation and the count of constant maps for one classifier and method."""
    corr = _mean_map_correlation(
        maps["real"], sets["real"].labels, maps["synthetic"], sets["synthetic"].labels, classes
    )
    values = [v for v in corr.values() if v is not None]
    flat = {name: int(constant_maps(m).sum()) for name, m in maps.items()}
    total = sum(len(m) for m in maps.values())
    return {
        "map_correlation_per_class": corr,
        "mean_map_correlation": float(np.mean(values)) if values else None,
        "constant_maps": flat,
        "explainer_failed": sum(flat.values()) * 2 >= total,
    }


def explain(
    *,
    model,
    real: ImageArrays,
    synthetic: ImageArrays,
    out_dir: Path,
    methods=METHODS,
    max_images_per_set: int = 8,
    lime_num_samples: int = 500,
    seed: int = 0,
    synthetic_model=None,
    rests_on: dict | str | None = None,
) -> dict:
    """Grad-CAM / LIME overlays for up to `max_images_per_set` real and synthetic images, side by side.

    `model` is the real-trained classifier; `synthetic_model` (optional) the synthetic-trained one,
    explained on the same images and drawn beside it. Maps explain the class each image is labelled
    with (real: its true class, synthetic: the class it was generated for). Returns the "explanations"
    section of metrics.json: per method, per-class correlations between the average real and
    synthetic maps (does the model look at the same places?), the number of constant maps (a
    constant map means the explainer failed, e.g. Grad-CAM on a 1x1 feature map), and for the
    synthetic-trained classifier its agreement with the real-trained one on the same images.
    """
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"Unknown explanation method(s) {unknown}; choose from {METHODS}.")
    if max_images_per_set < 1:
        raise ValueError(f"max_images_per_set must be at least 1, got {max_images_per_set}.")
    if len(real) == 0 or len(synthetic) == 0:
        raise ValueError("Explanations need at least one real and one synthetic image.")
    out_dir = Path(out_dir)
    sets = {
        "real": real.subset(select_balanced(real, max_images_per_set)),
        "synthetic": synthetic.subset(select_balanced(synthetic, max_images_per_set)),
    }
    models = {"real-trained": model} | ({"synthetic-trained": synthetic_model} if synthetic_model is not None else {})
    predicted = {
        who: {name: predict_proba(m, s.pixels).argmax(axis=1) for name, s in sets.items()} for who, m in models.items()
    }
    section: dict = {
        "methods": list(methods),
        "images_per_set": {k: len(v) for k, v in sets.items()},
        "classifiers": {who: _describe(m) for who, m in models.items()},
        "real_balanced_accuracy": {
            who: classification_metrics(real.labels, predict_proba(m, real.pixels), len(real.classes))[
                "balanced_accuracy"
            ]
            for who, m in models.items()
        },
        "real_images_scored": len(real),
        "gradcam_feature_map_px": {who: feature_map_px(m, sets["real"].pixels) for who, m in models.items()},
        "figures": [],
    }
    for method in methods:
        maps = {
            who: {
                name: _maps(
                    method, m, arrays, lime_num_samples=lime_num_samples, seed=seed, desc=f"LIME ({who}, {name})"
                )
                for name, arrays in sets.items()
            }
            for who, m in models.items()
        }
        section[method] = _method_result(maps["real-trained"], sets, list(real.classes))
        if "synthetic-trained" in maps:
            other = _method_result(maps["synthetic-trained"], sets, list(real.classes))
            for name, arrays in sets.items():
                agreement = _mean_map_correlation(
                    maps["real-trained"][name],
                    arrays.labels,
                    maps["synthetic-trained"][name],
                    arrays.labels,
                    list(real.classes),
                )
                other[f"agreement_with_real_trained_on_{name}_images"] = agreement
            section[method]["synthetic_trained"] = other
        if method == "lime":
            section[method]["num_samples"] = lime_num_samples
        title = {"gradcam": "Grad-CAM", "lime": "LIME"}[method]
        path = _plot_pairs(sets, maps, predicted, method=method, path=out_dir / f"{method}.png")
        who = " and ".join(models)
        section["figures"].append(
            {
                "title": f"{title} of the {who} classifier(s): real images (left) vs synthetic (right)",
                "path": path.relative_to(out_dir.parent).as_posix(),
            }
        )
    section.update(explanation_verdict(section))
    if rests_on:
        attach_rests_on(section, rests_on)
    return section


def _describe(model) -> str:
    arch, size = getattr(model, "arch", type(model).__name__), getattr(model, "image_size_px", None)
    return f"{arch} at {size} px" if size else str(arch)


NAMES = {"gradcam": "Grad-CAM", "lime": "LIME"}
FAILURE_CAUSE = {
    "gradcam": "Grad-CAM maps are constant for this classifier at this resolution",
    "lime": "LIME maps are constant: hiding parts of the image does not change this classifier's output",
}


def _failure(section: dict, method: str) -> str:
    result = section[method]
    counts = result["constant_maps"]
    text = (
        f"{FAILURE_CAUSE[method]} ({counts['real']} of {section['images_per_set']['real']} real and "
        f"{counts['synthetic']} of {section['images_per_set']['synthetic']} synthetic maps flat"
    )
    size = (section.get("gradcam_feature_map_px") or {}).get("real-trained")
    if method == "gradcam" and size:
        text += f"; {section['classifiers']['real-trained']}, its last feature map is {size[0]}x{size[1]}"
    return text + "): the explainer failed, not the images."


def explanation_verdict(section: dict) -> dict:
    """Verdict from the first method that worked (Grad-CAM first); a method with constant maps is an explainer
    failure and is reported as such, never as a property of the images or a missing class."""
    failed = [m for m in section["methods"] if section[m]["explainer_failed"]]
    working = [m for m in ("gradcam", "lime") if m in section["methods"] and m not in failed]
    notes = " ".join(_failure(section, m) for m in failed)
    if not working:
        return {
            "verdict": notes + " No explanation can be compared; use a larger --size or another arch.",
            "status": "info",
        }
    method = working[0]
    learned = section["real_balanced_accuracy"]["real-trained"]
    chance = 1 / len(section[method]["map_correlation_per_class"])
    if learned < chance + 0.1:
        text = (
            f"The real-trained classifier is barely better than chance on {section['real_images_scored']:,} real "
            f"images (balanced accuracy {learned:.2f}, chance {chance:.2f}), so its maps say nothing about the "
            f"images."
        )
        return {"verdict": (text + " " + notes).strip(), "status": "info"}
    corr = section[method]["mean_map_correlation"]
    name = NAMES[method]
    if corr is None:
        missing = [c for c, v in section[method]["map_correlation_per_class"].items() if v is None]
        text = (
            f"{name} maps could not be compared: no class has both real and synthetic images with non-flat "
            f"average maps (classes {', '.join(missing)})."
        )
        return {"verdict": (text + " " + notes).strip(), "status": "info"}
    if corr >= 0.7:
        text, status = "looks at the same regions in real and synthetic images", "good"
    elif corr >= 0.4:
        text, status = "looks at partly different regions in real and synthetic images", "fair"
    else:
        text, status = "looks at different regions in synthetic images than in real ones", "poor"
    text = f"The real-trained classifier {text} ({name} map correlation {corr:.2f})."
    other = section[method].get("synthetic_trained")
    if other is not None:
        values = [v for v in other["agreement_with_real_trained_on_real_images"].values() if v is not None]
        if other["explainer_failed"]:
            text += f" {name} failed for the synthetic-trained classifier (constant maps)."
        elif values:
            text += (
                f" On real images, the synthetic-trained classifier's {name} maps correlate "
                f"{np.mean(values):.2f} with the real-trained one's."
            )
    return {"verdict": (text + " " + notes).strip(), "status": status}


def _plot_pairs(sets: dict, maps: dict, predicted: dict, *, method: str, path: Path) -> Path:
    """Rows = images; per set (real, synthetic): the image, then one overlay per classifier."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    models = list(maps)
    per_set = 1 + len(models)
    rows = max(len(s) for s in sets.values())
    fig = Figure(figsize=(2.0 * per_set * 2, 2.0 * rows + 0.4), layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, per_set * 2))
    for ax in axes.ravel():
        ax.set_axis_off()
    for col, name in enumerate(("real", "synthetic")):
        arrays = sets[name]
        for row in range(len(arrays)):
            image = arrays.pixels[row].transpose(1, 2, 0)
            shown = image[..., 0] if image.shape[-1] == 1 else image
            label = arrays.classes[arrays.labels[row]]
            plain = axes[row, per_set * col]
            plain.imshow(shown, cmap="gray", vmin=0, vmax=255)
            plain.set_title(f"{name}: {label}", fontsize=8)
            for k, who in enumerate(models):
                overlay = axes[row, per_set * col + 1 + k]
                overlay.imshow(shown, cmap="gray", vmin=0, vmax=255)
                weights = maps[who][name][row]
                if method == "gradcam":
                    overlay.imshow(weights, cmap="jet", alpha=0.45, vmin=0, vmax=1)
                else:  # colour by sign, opacity by strength: neutral superpixels stay see-through
                    limit = max(float(np.abs(weights).max()), 1e-12)  # per image: LIME weights are relative
                    rgba = colormaps["RdYlGn"]((weights / limit + 1) / 2)
                    rgba[..., 3] = np.clip(np.abs(weights) / limit, 0, 1) * 0.8
                    overlay.imshow(rgba)
                pred = arrays.classes[predicted[who][name][row]]
                flat = " (flat map)" if constant_maps(weights[None])[0] else ""
                overlay.set_title(f"{who}: {pred}{flat}", fontsize=7, color="#222" if pred == label else "#c0392b")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return atomic_write_bytes(path, buffer.getvalue())
