"""Usefulness verdict: one statement over all architectures (order-free), what it rests on, and whether the
synthetic set holds copies of the real test images (which void it)."""

from __future__ import annotations

import numpy as np

from synthmed.data.arrays import ImageArrays
from synthmed.data.quality import NEAR_DUPLICATE_CORRELATION, near_duplicates_of
from synthmed.evaluate.classifiers import VGG_SCRATCH_DESCRIPTION


def weights_description(arch: str, weights_dir, *, vgg_recipe: bool = True) -> str:
    """'ImageNet weights', 'from scratch', or how vgg19 was built from scratch, for one arch of a TSTRConfig."""
    if arch == "vgg19" and weights_dir is None and vgg_recipe:
        return VGG_SCRATCH_DESCRIPTION
    if arch == "small_cnn" or weights_dir is None:
        return "from scratch"
    return "ImageNet weights"


def classifier_description(arch: str, *, weights_dir, image_size_px: int, seeds, vgg_recipe: bool = True) -> str:
    """'resnet50 (ImageNet weights, 64 px, seeds 0, 1)'."""
    seeds = list(seeds)
    seed_text = f"seed{'s' if len(seeds) > 1 else ''} {', '.join(str(s) for s in seeds)}"
    weights = weights_description(arch, weights_dir, vgg_recipe=vgg_recipe)
    return f"{arch} ({weights}, {image_size_px} px, {seed_text})"


def rests_on(
    *,
    archs,
    weights_dir,
    image_size_px: int,
    seeds,
    n_train: dict[str, int],
    n_test: int,
    test_name: str = "real test",
    vgg_recipe: bool = True,
) -> dict:
    """What a classifier-based verdict rests on: structured fields plus one sentence ("text"); archs sorted."""
    archs = sorted(archs)
    classifiers = [
        {
            "arch": arch,
            "weights": weights_description(arch, weights_dir, vgg_recipe=vgg_recipe),
            "image_size_px": image_size_px,
            "seeds": list(seeds),
        }
        for arch in archs
    ]
    described = "; ".join(
        classifier_description(
            a, weights_dir=weights_dir, image_size_px=image_size_px, seeds=seeds, vgg_recipe=vgg_recipe
        )
        for a in archs
    )
    trained = ", ".join(f"{n:,} {name}" for name, n in n_train.items())
    text = f"{described}; trained on {trained} images; tested on {n_test:,} {test_name} images."
    return {"classifiers": classifiers, "n_train_images": dict(n_train), "n_test_images": int(n_test), "text": text}


def attach_rests_on(section: dict, rests_on: dict | str) -> None:
    """Store `rests_on` as section["rests_on"] (a dict with "text") and end the verdict with 'Rests on: <text>'."""
    section["rests_on"] = {"text": rests_on} if isinstance(rests_on, str) else dict(rests_on)
    section["verdict"] = f"{section['verdict']} Rests on: {section['rests_on']['text']}"


def _status(value: float) -> str:
    return "good" if value >= 0.9 else "fair" if value >= 0.75 else "poor"


def _learned(entry: dict, chance: float) -> bool:
    """Is a real-trained classifier clearly above chance (95% interval above it; else mean > chance + 0.05)?"""
    stats = entry["balanced_accuracy"]
    low = stats.get("ci_low")
    return (low if low is not None else stats["mean"] - 0.05) > chance


def tstr_verdict(section: dict) -> dict:
    """Verdict and status of the usefulness section from every arch's balanced accuracies (order-free).

    Per arch: TSTR/TRTR of balanced accuracy, counted only when that arch's real-trained classifier
    learned (its 95% interval is above chance; without an interval, its mean is more than 0.05 above).
    Status: the median of the counted ratios (>= 0.9 good, >= 0.75 caution, else poor), and poor whenever no
    counted arch's synthetic-trained classifier beat chance (same rule); the text gives the range across archs.
    No arch learned: inconclusive (status info), since 0.50/0.50 proves nothing.
    """
    results, all_ratios = section["results"], section["ratios"]
    per_arch, excluded, chance_of = {}, [], {}
    for arch in sorted(results):
        res = results[arch]
        if "real" not in res or "synthetic" not in res:
            continue
        chance = chance_of[arch] = 1.0 / len(res["real"]["per_class_recall"])
        value = all_ratios.get(arch, {}).get("tstr_over_trtr", {}).get("balanced_accuracy", {}).get("mean")
        if not _learned(res["real"], chance):
            excluded.append((arch, res["real"]["balanced_accuracy"]["mean"], chance))
        elif value is not None:
            per_arch[arch] = value
    base = {"tstr_over_trtr_balanced_accuracy_per_arch": per_arch}
    if not per_arch and not excluded:
        return {"verdict": "Usefulness was not compared with real-only training (no ratio).", "status": "info", **base}
    if not per_arch:
        names = ", ".join(f"{a} {real:.2f}" for a, real, _ in excluded)
        text = (
            f"Inconclusive: the classifiers trained on real images did not learn (balanced accuracy {names}; "
            f"chance {excluded[0][2]:.2f}), so comparing synthetic-trained ones with them says nothing. "
            f"Train longer (--tstr-epochs), choose another arch, or give ImageNet weights (--tstr-weights-dir)."
        )
        return {"verdict": text, "status": "info", "tstr_over_trtr_balanced_accuracy": None, **base}
    values = np.array(list(per_arch.values()))
    median = float(np.median(values))
    if len(per_arch) == 1:
        arch, value = next(iter(per_arch.items()))
        real = results[arch]["real"]["balanced_accuracy"]["mean"]
        synth = results[arch]["synthetic"]["balanced_accuracy"]["mean"]
        text = (
            f"A {arch} classifier trained only on synthetic images reaches {value:.0%} of the balanced accuracy "
            f"of one trained on real images ({synth:.2f} vs {real:.2f} on {section['test_images']} real test "
            f"images)."
        )
    else:
        each = ", ".join(f"{a} {v:.2f}" for a, v in per_arch.items())
        text = (
            f"TSTR/TRTR balanced accuracy lies between {values.min():.2f} and {values.max():.2f} across "
            f"{len(per_arch)} architectures (median {median:.2f}; {each})."
        )
        if _status(values.min()) != _status(values.max()):
            text += " The architectures disagree; the status follows the median."
    gains = [
        results[a]["real+synthetic"]["balanced_accuracy"]["mean"] - results[a]["real"]["balanced_accuracy"]["mean"]
        for a in per_arch
        if "real+synthetic" in results[a]
    ]
    if gains:
        text += f" Adding the synthetic images to the real ones changes it by {min(gains):+.2f}" + (
            f" to {max(gains):+.2f}." if len(gains) > 1 else "."
        )
    if excluded:
        text += (
            " Not counted (real-trained classifier at chance): "
            + ", ".join(f"{a} ({real:.2f})" for a, real, _ in excluded)
            + "."
        )
    status = _status(median)
    unlearned = [a for a in per_arch if not _learned(results[a]["synthetic"], chance_of[a])]
    if unlearned:
        text += (
            " The synthetic-trained "
            + ", ".join(f"{a} ({results[a]['synthetic']['balanced_accuracy']['mean']:.2f})" for a in unlearned)
            + " did not beat chance: it learned nothing usable from the synthetic images, whatever the ratio."
        )
        if len(unlearned) == len(per_arch):
            status = "poor"  # a ratio over a weak real-trained baseline must not read fair when nothing was learned
    return {"verdict": text, "status": status, "tstr_over_trtr_balanced_accuracy": median, **base}


def flag_test_contamination(section: dict, *, synthetic: ImageArrays, test: ImageArrays) -> dict:
    """Synthetic images that are near-duplicates of real TEST images (the dataset card's rule, mirrors included)
    let a synthetic-trained classifier see the test set: counted, listed, and the verdict made poor."""
    best, partner = near_duplicates_of(synthetic.pixels, test.pixels)
    hits = np.flatnonzero(best >= NEAR_DUPLICATE_CORRELATION)
    section["test_contamination"] = {
        "definition": f"thumbnail correlation >= {NEAR_DUPLICATE_CORRELATION}, mirrored copies included",
        "n_synthetic": len(synthetic),
        "n_near_duplicates_of_test": int(len(hits)),
        "pairs": [{"synthetic_id": synthetic.ids[i], "test_id": test.ids[partner[i]]} for i in hits[:50]],
    }
    if len(hits):
        section["status"] = "poor"
        section["verdict"] = (
            f"Not a valid test: {len(hits)} of {len(synthetic)} synthetic images are near-duplicates of real test "
            f"images, so the synthetic-trained classifiers have seen the test set (pairs in "
            f"usefulness.test_contamination). {section['verdict']}"
        )
    return section
