"""Read MedMNIST-style .npz files (keys {train,val,test}_{images,labels}), keeping the official splits."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from synthmed.data.intensity import fit_square, is_grey
from synthmed.data.records import ReadOptions, SourceImage

MEDMNIST_CLASSES: dict[str, list[str]] = {
    "pneumoniamnist": ["normal", "pneumonia"],
    "breastmnist": ["malignant", "normal_or_benign"],
    "octmnist": ["choroidal_neovascularization", "diabetic_macular_edema", "drusen", "normal"],
    "retinamnist": ["grade_0", "grade_1", "grade_2", "grade_3", "grade_4"],
    "dermamnist": [
        "actinic_keratosis",
        "basal_cell_carcinoma",
        "benign_keratosis",
        "dermatofibroma",
        "melanoma",
        "melanocytic_nevus",
        "vascular_lesion",
    ],
    "bloodmnist": [
        "basophil",
        "eosinophil",
        "erythroblast",
        "immature_granulocyte",
        "lymphocyte",
        "monocyte",
        "neutrophil",
        "platelet",
    ],
    "pathmnist": [
        "adipose",
        "background",
        "debris",
        "lymphocytes",
        "mucus",
        "smooth_muscle",
        "normal_colon_mucosa",
        "cancer_associated_stroma",
        "colorectal_adenocarcinoma_epithelium",
    ],
    "tissuemnist": [
        "collecting_duct",
        "distal_convoluted_tubule",
        "glomerular_endothelial",
        "interstitial_endothelial",
        "leukocytes",
        "podocytes",
        "proximal_tubule",
        "thick_ascending_limb",
    ],
    "organamnist": [
        "bladder",
        "femur_left",
        "femur_right",
        "heart",
        "kidney_left",
        "kidney_right",
        "liver",
        "lung_left",
        "lung_right",
        "pancreas",
        "spleen",
    ],
}
MEDMNIST_CLASSES["organcmnist"] = MEDMNIST_CLASSES["organsmnist"] = MEDMNIST_CLASSES["organamnist"]

MEDMNIST_MODALITY = {
    "pneumoniamnist": "chest x-ray",
    "chestmnist": "chest x-ray",
    "breastmnist": "breast ultrasound",
    "octmnist": "retinal oct",
    "retinamnist": "fundus photograph",
    "dermamnist": "dermatoscopy",
    "bloodmnist": "blood smear",
    "pathmnist": "histopathology",
    "tissuemnist": "kidney microscopy",
    "organamnist": "abdominal ct",
    "organcmnist": "abdominal ct",
    "organsmnist": "abdominal ct",
}


def medmnist_name(path: str | Path) -> str | None:
    """The MedMNIST dataset a file name starts with (e.g. `pneumoniamnist_28.npz` -> pneumoniamnist)."""
    stem = Path(path).name.lower()
    matches = [name for name in list(MEDMNIST_CLASSES) + ["chestmnist"] if stem.startswith(name)]
    return max(matches, key=len) if matches else None


def npz_class_names(path: str | Path, n_classes: int, given: list[str] | None) -> list[str]:
    """`given` names (checked against the label count), else MedMNIST's names, else class_0, class_1, ..."""
    if given:
        if len(given) < n_classes:
            raise ValueError(
                f"--classes names {len(given)} classes ({given}) but {path} has labels 0..{n_classes - 1}; "
                f"give {n_classes} comma-separated names."
            )
        return list(given)
    known = MEDMNIST_CLASSES.get(medmnist_name(path) or "")
    if known and len(known) >= n_classes:
        return list(known)
    return [f"class_{k}" for k in range(n_classes)]


def read_npz(
    path: str | Path, options: ReadOptions, *, classes: list[str] | None = None
) -> tuple[list[SourceImage], list[str]]:
    """All images of a MedMNIST .npz, each with its official split, and the class names.

    The per-image `source_sha256` hashes the image's pixel bytes (there is no file per image), so
    byte-identical duplicates are pixel-identical images.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            data = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(
            f"{path} is not a readable .npz archive ({type(exc).__name__}: {exc}); pass a MedMNIST-style "
            f".npz written by numpy.savez (it may be truncated: download or write it again)."
        ) from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds one array, not a MedMNIST-style .npz with {{train,val,test}}_images.")
    splits = [s for s in ("train", "val", "test") if f"{s}_images" in data]
    if not splits:
        raise ValueError(
            f"{path} has keys {sorted(data)}; a MedMNIST-style .npz needs {{train,val,test}}_images "
            f"and {{train,val,test}}_labels arrays."
        )
    labels_all = []
    for split in splits:
        if f"{split}_labels" not in data:
            raise ValueError(f"{path} has {split}_images but no {split}_labels.")
        labels = np.asarray(data[f"{split}_labels"])
        if labels.ndim == 2 and labels.shape[1] > 1:
            raise ValueError(
                f"{path}: {split}_labels has shape {labels.shape}: multi-label data (e.g. chestmnist) "
                f"cannot become one class per image; make a single-label .npz or an ImageFolder."
            )
        labels_all.append(labels.reshape(-1).astype(np.int64))
    n_classes = int(max(lab.max() for lab in labels_all if lab.size)) + 1
    names = npz_class_names(path, n_classes, classes)
    images: list[SourceImage] = []
    for split, labels in zip(splits, labels_all):
        stack = np.asarray(data[f"{split}_images"])
        if len(stack) != len(labels):
            raise ValueError(f"{path}: {split}_images has {len(stack)} images but {split}_labels has {len(labels)}.")
        for index, (pixels, label) in enumerate(zip(stack, labels)):
            images.append(_npz_image(path, split, index, pixels, names[int(label)], options))
    return images, names


def _npz_image(path: Path, split: str, index: int, pixels: np.ndarray, label: str, options: ReadOptions) -> SourceImage:
    if pixels.dtype != np.uint8:
        from synthmed.data.intensity import scale_to_uint8

        pixels = scale_to_uint8(pixels, scaling=options.scaling)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    height, width = pixels.shape[:2]
    return SourceImage(
        pixels=fit_square(pixels, size_px=options.size_px, fit=options.fit),
        source_path=f"{path.name}:{split}[{index}]",
        source_sha256=hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest(),
        orig_format="NPZ",
        orig_mode="L" if pixels.ndim == 2 else "RGB",
        orig_size=f"{width}x{height}",
        grey=is_grey(pixels),
        label=label,
        split=split,
    )
