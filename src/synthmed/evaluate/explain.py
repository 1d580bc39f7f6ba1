"""Explanations: Grad-CAM and LIME maps of a real-trained classifier on real vs synthetic images."""

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


def gradcam_maps(model: torch.nn.Module, pixels: np.ndarray, labels: np.ndarray, *,
                 target_layer: torch.nn.Module | None = None) -> np.ndarray:
    """Grad-CAM maps [N, H, W] in [0, 1] for uint8 images [N, C, H, W], each for its class in `labels`."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layer = target_layer if target_layer is not None else getattr(model, "target_layer", None)
    if layer is None:
        raise ValueError("Grad-CAM needs a target layer: pass target_layer=..., or a classifier from "
                         "synthmed.evaluate.classifiers (ImageClassifier.target_layer).")
    model.eval()
    x = to_model_range(torch.from_numpy(np.ascontiguousarray(pixels)))
    with GradCAM(model=model, target_layers=[layer]) as cam:
        maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(k)) for k in labels])
    return np.asarray(maps, dtype=np.float32)


def lime_maps(model: torch.nn.Module, pixels: np.ndarray, labels: np.ndarray, *, num_samples: int,
              batch_size: int = 64, seed: int = 0, desc: str = "LIME") -> np.ndarray:
    """LIME superpixel weights painted back onto pixels [N, H, W] (positive = supports the class)."""
    from lime import lime_image
    from lime.wrappers.scikit_image import SegmentationAlgorithm

    def classifier_fn(batch: np.ndarray) -> np.ndarray:  # [B, H, W, 3] in 0..255 -> [B, K]
        uint8 = np.clip(np.round(batch), 0, 255).astype(np.uint8).transpose(0, 3, 1, 2)
        return predict_proba(model, uint8, batch_size=batch_size)

    height, width = pixels.shape[-2:]
    segmenter = SegmentationAlgorithm("slic", n_segments=int(np.clip(height * width // 16, 8, 64)),
                                      compactness=10, sigma=1, start_label=0)
    explainer = lime_image.LimeImageExplainer(random_state=seed)
    maps = []
    for image, label in tqdm(list(zip(pixels, labels)), desc=desc, unit="image"):
        rgb = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image
        explanation = explainer.explain_instance(
            rgb.transpose(1, 2, 0).astype(np.float64), classifier_fn, labels=(int(label),), top_labels=None,
            num_samples=num_samples, batch_size=batch_size, segmentation_fn=segmenter, random_seed=seed)
        weights = dict(explanation.local_exp[int(label)])
        maps.append(np.vectorize(lambda s: weights.get(s, 0.0))(explanation.segments).astype(np.float32))
    return np.stack(maps)


def _mean_map_correlation(real_maps, real_labels, synth_maps, synth_labels, classes) -> dict:
    """Per class: Pearson correlation of the class-average maps of real and synthetic images."""
    out = {}
    for k, name in enumerate(classes):
        a, b = real_maps[real_labels == k], synth_maps[synth_labels == k]
        if len(a) == 0 or len(b) == 0:
            out[name] = None
            continue
        a, b = a.mean(axis=0), b.mean(axis=0)
        if a.shape != b.shape:
            b = torch.nn.functional.interpolate(torch.from_numpy(b)[None, None], size=a.shape,
                                                mode="bilinear")[0, 0].numpy()
        out[name] = float(np.corrcoef(a.ravel(), b.ravel())[0, 1]) if a.std() > 0 and b.std() > 0 else None
    return out


def explain(*, model, real: ImageArrays, synthetic: ImageArrays, out_dir: Path, methods=METHODS,
            max_images_per_set: int = 8, lime_num_samples: int = 500, seed: int = 0) -> dict:
    """Grad-CAM / LIME overlays for up to `max_images_per_set` real and synthetic images, side by side.

    Maps explain the class each image is labelled with (real: its true class, synthetic: the class it
    was generated for). Returns the "explanations" section of metrics.json, with per-class
    correlations between the average real and synthetic maps (does the model look at the same places?).
    """
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"Unknown explanation method(s) {unknown}; choose from {METHODS}.")
    if max_images_per_set < 1:
        raise ValueError(f"max_images_per_set must be at least 1, got {max_images_per_set}.")
    if len(real) == 0 or len(synthetic) == 0:
        raise ValueError("Explanations need at least one real and one synthetic image.")
    out_dir = Path(out_dir)
    sets = {"real": real.subset(select_balanced(real, max_images_per_set)),
            "synthetic": synthetic.subset(select_balanced(synthetic, max_images_per_set))}
    predicted = {name: predict_proba(model, s.pixels).argmax(axis=1) for name, s in sets.items()}
    section: dict = {"methods": list(methods), "images_per_set": {k: len(v) for k, v in sets.items()},
                     "figures": []}
    for method in methods:
        maps = {}
        for name, arrays in sets.items():
            if method == "gradcam":
                maps[name] = gradcam_maps(model, arrays.pixels, arrays.labels)
            else:
                maps[name] = lime_maps(model, arrays.pixels, arrays.labels, num_samples=lime_num_samples, seed=seed,
                                       desc=f"LIME ({name})")
        corr = _mean_map_correlation(maps["real"], sets["real"].labels, maps["synthetic"], sets["synthetic"].labels,
                                     real.classes)
        values = [v for v in corr.values() if v is not None]
        section[method] = {"map_correlation_per_class": corr,
                           "mean_map_correlation": float(np.mean(values)) if values else None}
        if method == "lime":
            section[method]["num_samples"] = lime_num_samples
        title = {"gradcam": "Grad-CAM", "lime": "LIME"}[method]
        path = _plot_pairs(sets, maps, predicted, method=method, path=out_dir / f"{method}.png")
        section["figures"].append({"title": f"{title}: where the classifier looks, real (left) vs synthetic (right)",
                                   "path": path.relative_to(out_dir.parent).as_posix()})
    section.update(_verdict(section))
    return section


def _verdict(section: dict) -> dict:
    method = "gradcam" if "gradcam" in section else section["methods"][0]
    corr = section[method]["mean_map_correlation"]
    name = {"gradcam": "Grad-CAM", "lime": "LIME"}[method]
    if corr is None:
        return {"verdict": f"{name} maps could not be compared (a class is missing from one set).", "status": "info"}
    if corr >= 0.7:
        text, status = "looks at the same regions in real and synthetic images", "good"
    elif corr >= 0.4:
        text, status = "looks at partly different regions in real and synthetic images", "fair"
    else:
        text, status = "looks at different regions in synthetic images than in real ones", "poor"
    return {"verdict": f"The real-trained classifier {text} ({name} map correlation {corr:.2f}).", "status": status}


def _plot_pairs(sets: dict, maps: dict, predicted: dict, *, method: str, path: Path) -> Path:
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    rows = max(len(s) for s in sets.values())
    fig = Figure(figsize=(8.0, 2.0 * rows + 0.4), layout="constrained")
    axes = np.atleast_2d(fig.subplots(rows, 4))
    for ax in axes.ravel():
        ax.set_axis_off()
    for col, name in enumerate(("real", "synthetic")):
        arrays = sets[name]
        for row in range(len(arrays)):
            image = arrays.pixels[row].transpose(1, 2, 0)
            grey = image[..., 0] if image.shape[-1] == 1 else None
            label, pred = arrays.classes[arrays.labels[row]], arrays.classes[predicted[name][row]]
            plain, overlay = axes[row, 2 * col], axes[row, 2 * col + 1]
            plain.imshow(grey if grey is not None else image, cmap="gray", vmin=0, vmax=255)
            plain.set_title(f"{name}: {label}", fontsize=8)
            overlay.imshow(grey if grey is not None else image, cmap="gray", vmin=0, vmax=255)
            if method == "gradcam":
                overlay.imshow(maps[name][row], cmap="jet", alpha=0.45, vmin=0, vmax=1)
            else:  # colour by sign, opacity by strength: neutral superpixels stay see-through
                weights = maps[name][row]
                limit = max(float(np.abs(weights).max()), 1e-12)  # per image: LIME weights are relative
                rgba = colormaps["RdYlGn"]((weights / limit + 1) / 2)
                rgba[..., 3] = np.clip(np.abs(weights) / limit, 0, 1) * 0.8
                overlay.imshow(rgba)
            overlay.set_title(f"predicted: {pred}", fontsize=8, color="#222" if pred == label else "#c0392b")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return atomic_write_bytes(path, buffer.getvalue())
