"""`prepare_dataset` end to end on small folders: the contract, splits, errors, duplicates and leakage."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from synthmed.data.dataset import PreparedDataset
from synthmed.data.manifest import REQUIRED_COLUMNS, read_dataset_info, read_manifest
from synthmed.data.prepare import PrepareConfig, prepare_dataset


def _prepare(source, out, **options):
    return prepare_dataset(source, out_dir=out, config=PrepareConfig(size_px=16, workers=1, **options))


def test_class_folder_follows_the_contract(class_folder, tmp_path):
    out = _prepare(class_folder, tmp_path / "out", patient_id_regex=r"(p\w+)_", val_fraction=0.25, test_fraction=0.25)
    frame = read_manifest(out)
    assert tuple(frame.columns[:5]) == REQUIRED_COLUMNS
    info = read_dataset_info(out)
    assert info.classes == ["left", "right"] and info.channels == 1 and info.image_size_px == 16
    assert set(frame["split"]) == {"train", "val", "test"} and len(frame) == 16
    for path in frame["path"]:
        with Image.open(out / path) as img:
            assert img.size == (16, 16) and img.mode == "L"
    assert (frame.groupby("patient_id")["split"].nunique() == 1).all()  # no patient in two splits
    card = json.loads((out / "card.json").read_text())
    assert card["patient_ids_known"] and card["n_images"] == 16 and (out / "card.md").is_file()
    assert len(PreparedDataset(out, "train")) == (frame["split"] == "train").sum()


def test_user_splits_are_kept_and_val_carved_from_train(tmp_path, make_class_folder):
    src = tmp_path / "src"
    make_class_folder(src, split="train", per_class=10, seed=1, patients=True)
    make_class_folder(src, split="test", per_class=4, seed=2, patients=True)
    out = _prepare(src, tmp_path / "out", patient_id_regex=r"(p\w+)_", val_fraction=0.2)
    frame = read_manifest(out)
    test_sources = set(frame.loc[frame["split"] == "test", "source_path"])
    assert test_sources == {p for p in test_sources if p.startswith("test/")} and len(test_sources) == 8
    assert (frame["split"] == "val").sum() > 0
    assert frame.loc[frame["split"] == "val", "source_path"].str.startswith("train/").all()


def test_corrupt_files_are_listed_not_fatal(class_folder, tmp_path):
    (class_folder / "left" / "zero.png").write_bytes(b"")
    (class_folder / "left" / "notes.jpg").write_text("not an image")
    good = (class_folder / "right").glob("*.png").__next__().read_bytes()
    (class_folder / "right" / "truncated.png").write_bytes(good[: len(good) // 2])
    (class_folder / "README.txt").write_text("ignored")
    out = _prepare(class_folder, tmp_path / "out")
    errors = pd.read_csv(out / "errors.csv")
    reasons = dict(zip(errors["source_path"].str.rsplit("/", n=1).str[-1], errors["reason"]))
    assert set(reasons) == {"zero.png", "notes.jpg", "truncated.png"}
    assert "0 bytes" in reasons["zero.png"]
    card = json.loads((out / "card.json").read_text())
    assert card["errors"]["count"] == 3 and len(read_manifest(out)) == 16
    assert "truncated.png" in (out / "card.md").read_text()


def test_empty_or_unreadable_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        _prepare(tmp_path / "empty", tmp_path / "out")
    bad = tmp_path / "bad" / "cls"
    bad.mkdir(parents=True)
    (bad / "a.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="no readable images.*a.png"):
        _prepare(tmp_path / "bad", tmp_path / "out2")
    assert not (tmp_path / "out2").exists() and not (tmp_path / "out2.partial").exists()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _prepare(tmp_path / "missing", tmp_path / "out3")


def test_an_empty_class_folder_or_a_named_class_without_images_is_refused(class_folder, tmp_path):
    source = class_folder
    (source / "middle").mkdir()  # an empty class folder: the class would vanish without a word
    with pytest.raises(ValueError, match=r"class folder\(s\) .*middle hold no image files"):
        _prepare(source, tmp_path / "out")
    (source / "middle" / "notes.txt").write_text("no images here")  # only non-image files: as empty
    with pytest.raises(ValueError, match=r"class folder\(s\) .*middle hold no image files"):
        _prepare(source, tmp_path / "out")
    (source / "middle" / "notes.txt").unlink()
    (source / "middle").rmdir()
    with pytest.raises(ValueError, match=r"classes \['middle'\] .* have no readable images"):
        _prepare(source, tmp_path / "out", classes=["left", "middle", "right"])
    assert not (tmp_path / "out").exists()
    assert read_dataset_info(_prepare(source, tmp_path / "out")).classes == ["left", "right"]


def test_output_inside_the_source_is_refused(class_folder):
    with pytest.raises(ValueError, match="inside the source folder"):
        _prepare(class_folder, class_folder / "prepared")
    assert not (class_folder / "prepared").exists()


def test_existing_output_is_not_overwritten(class_folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="--overwrite"):
        _prepare(class_folder, out)
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="not one"):  # --overwrite replaces prepared datasets, not any folder
        _prepare(class_folder, out, overwrite=True)
    assert (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    _prepare(class_folder, out)
    (out / "stale.txt").write_text("from the old dataset")
    _prepare(class_folder, out, overwrite=True)
    assert not (out / "stale.txt").exists() and (out / "manifest.csv").is_file()


def test_source_inside_the_output_is_refused(class_folder, tmp_path):
    """Cold-test finding: `prepare parent/src --out parent --overwrite` deleted the source."""
    parent = tmp_path / "parent"
    shutil.copytree(class_folder, parent / "src")
    with pytest.raises(ValueError, match="inside --out"):
        _prepare(parent / "src", parent, overwrite=True)
    assert any((parent / "src").rglob("*.png"))


def test_planted_duplicate_across_splits_is_reported(tmp_path, make_class_folder):
    src = tmp_path / "src"
    make_class_folder(src, split="train", per_class=6, seed=3)
    make_class_folder(src, split="test", per_class=3, seed=4)
    shutil.copy(src / "train" / "left" / "left_3_0.png", src / "test" / "left" / "copy_of_train.png")
    out = _prepare(src, tmp_path / "out", val_fraction=0.0)
    card = json.loads((out / "card.json").read_text())
    exact = card["exact_duplicates"]
    assert exact["groups"] == 1 and exact["crossing_splits"] == 1
    assert sorted(exact["list"][0]["sources"]) == ["test/left/copy_of_train.png", "train/left/left_3_0.png"]
    assert any("cross splits" in w for w in card["warnings"])


def test_near_duplicate_is_found(tmp_path, make_class_folder):
    src = make_class_folder(tmp_path / "src", per_class=6, seed=5)
    with Image.open(src / "left" / "left_5_0.png") as img:
        img.convert("RGB").save(src / "right" / "reencoded.jpg", quality=90)  # same picture, other bytes
    out = _prepare(src, tmp_path / "out")
    near = json.loads((out / "card.json").read_text())["near_duplicates"]
    pairs = [sorted(p["sources"]) for p in near["list"]]
    assert ["left/left_5_0.png", "right/reencoded.jpg"] in pairs


def test_duplicates_stay_together_when_we_split(tmp_path, make_class_folder):
    src = make_class_folder(tmp_path / "src", per_class=10, seed=6)
    for k in range(4):
        shutil.copy(src / "left" / f"left_6_{k}.png", src / "left" / f"dup_{k}.png")
    out = _prepare(src, tmp_path / "out", val_fraction=0.3, test_fraction=0.3)
    card = json.loads((out / "card.json").read_text())
    assert card["exact_duplicates"]["groups"] == 4 and card["exact_duplicates"]["crossing_splits"] == 0
    assert any("split BY IMAGE" in note for note in card["notes"])


def test_shortcut_warning_names_the_class(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(8):
        (tmp_path / "src" / "a").mkdir(parents=True, exist_ok=True)
        (tmp_path / "src" / "b").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8)).save(tmp_path / "src" / "a" / f"{k}.png")
        rgb = rng.integers(0, 255, (30 + k, 50, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(tmp_path / "src" / "b" / f"{k}.jpg")
    out = _prepare(tmp_path / "src", tmp_path / "out")
    warnings = json.loads((out / "card.json").read_text())["warnings"]
    assert any(w.startswith("file format differs between classes: 'a' has 100% PNG") for w in warnings)
    assert any(w.startswith("colour mode differs") for w in warnings)
    assert any(w.startswith("aspect ratio differs") for w in warnings)
    assert not any(w.startswith("original size") for w in warnings)  # 40 px and 30-50 px are one size class


def test_metadata_csv_gives_patients_labels_and_columns(tmp_path):
    src = tmp_path / "flat"
    src.mkdir()
    rng = np.random.default_rng(1)
    rows = []
    for k in range(12):
        Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8)).save(src / f"img{k}.png")
        rows.append(
            {
                "file": f"img{k}.png",
                "patient_id": f"P{k // 3}",
                "label": "sick" if k % 2 else "well",
                "age_years": 40 + k,
                "sex": "F",
                "view": "PA",
            }
        )
    pd.DataFrame(rows).to_csv(tmp_path / "meta.csv", index=False)
    out = _prepare(src, tmp_path / "out", metadata_csv=tmp_path / "meta.csv", val_fraction=0.25, test_fraction=0.25)
    frame = read_manifest(out)
    assert read_dataset_info(out).classes == ["sick", "well"]
    assert {"age_years", "sex", "view", "patient_id"} <= set(frame.columns)
    assert (frame.groupby("patient_id")["split"].nunique() == 1).all()
    assert frame.loc[frame["source_path"] == "img4.png", "age_years"].item() == 44


def test_colour_images_auto_three_channels(tmp_path):
    rng = np.random.default_rng(2)
    for label in ("x", "y"):
        (tmp_path / "src" / label).mkdir(parents=True)
        for k in range(4):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(
                tmp_path / "src" / label / f"{k}.png"
            )
    out = _prepare(tmp_path / "src", tmp_path / "out")
    assert read_dataset_info(out).channels == 3
    with Image.open(out / read_manifest(out)["path"][0]) as img:
        assert img.mode == "RGB"
    out1 = _prepare(tmp_path / "src", tmp_path / "out1", channels="1")
    assert read_dataset_info(out1).channels == 1


def test_npz_keeps_official_splits_and_names(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 10), ("val", 4), ("test", 6)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(-1, 1).astype(np.uint8)
    arrays["val_images"][0] = arrays["train_images"][0]
    np.savez(tmp_path / "pneumoniamnist_28.npz", **arrays)
    out = _prepare(tmp_path / "pneumoniamnist_28.npz", tmp_path / "out")
    info = read_dataset_info(out)
    assert info.classes == ["normal", "pneumonia"] and info.split_counts == {"train": 10, "val": 4, "test": 6}
    assert info.modality == "chest x-ray"
    card = json.loads((out / "card.json").read_text())
    assert card["exact_duplicates"]["crossing_splits"] == 1
    np.savez(tmp_path / "other.npz", **arrays)
    assert read_dataset_info(_prepare(tmp_path / "other.npz", tmp_path / "o2")).classes == ["class_0", "class_1"]
    named = _prepare(tmp_path / "other.npz", tmp_path / "o3", classes=["a", "b"])
    assert read_dataset_info(named).classes == ["a", "b"]
    with pytest.raises(ValueError, match="give 2"):
        _prepare(tmp_path / "other.npz", tmp_path / "o4", classes=["a"])


def test_multilabel_npz_is_refused_with_a_reason(tmp_path):
    np.savez(
        tmp_path / "chestmnist.npz",
        train_images=np.zeros((3, 28, 28), np.uint8),
        train_labels=np.zeros((3, 14), np.uint8),
    )
    with pytest.raises(ValueError, match="multi-label"):
        _prepare(tmp_path / "chestmnist.npz", tmp_path / "out")


def test_pool_of_workers_gives_the_same_result(tmp_path, make_class_folder):
    src = make_class_folder(tmp_path / "src", per_class=40, seed=7)
    one = read_manifest(prepare_dataset(src, out_dir=tmp_path / "a", config=PrepareConfig(size_px=16, workers=1)))
    two = read_manifest(prepare_dataset(src, out_dir=tmp_path / "b", config=PrepareConfig(size_px=16, workers=2)))
    pd.testing.assert_frame_equal(one, two)
    assert (tmp_path / "a" / one["path"][5]).read_bytes() == (tmp_path / "b" / two["path"][5]).read_bytes()


def test_files_in_every_mode_are_read_from_disk(tmp_path):
    rng = np.random.default_rng(3)
    folder = tmp_path / "src" / "mixed"
    folder.mkdir(parents=True)
    grey = rng.integers(0, 255, (24, 30), dtype=np.uint8)
    Image.fromarray(grey).save(folder / "l.png")
    Image.fromarray(grey).convert("1").save(folder / "bilevel.png")
    Image.fromarray(grey).convert("P").save(folder / "palette.gif")
    Image.fromarray(np.dstack([grey, grey, grey, np.full_like(grey, 255)]), "RGBA").save(folder / "rgba.png")
    Image.fromarray(np.dstack([grey, np.full_like(grey, 200)]), "LA").save(folder / "la.png")
    Image.fromarray(grey.astype(np.uint16) * 16).save(folder / "sixteen.png")  # 12-bit values in 16 bits
    Image.fromarray(grey).save(folder / "jpeg.jpg", quality=95)
    Image.fromarray(grey).save(folder / "tiff.tif")
    Image.fromarray(grey.astype(np.float32) / 255).save(folder / "float.tif")
    out = _prepare(tmp_path / "src", tmp_path / "out", channels="1")
    frame = read_manifest(out)
    assert len(frame) == 9 and json.loads((out / "card.json").read_text())["errors"]["count"] == 0
    modes = dict(zip(frame["source_path"].str.rsplit("/", n=1).str[-1], frame["orig_mode"]))
    assert modes["sixteen.png"].startswith("I") and modes["float.tif"] == "F" and modes["palette.gif"] == "P"
    pixels = {
        name: np.asarray(Image.open(out / path))
        for name, path in zip(frame["source_path"].str.rsplit("/", n=1).str[-1], frame["path"])
    }
    reference = pixels["l.png"].astype(float)
    for name in ("rgba.png", "la.png", "sixteen.png", "jpeg.jpg", "tiff.tif", "float.tif"):
        assert np.corrcoef(reference.ravel(), pixels[name].astype(float).ravel())[0, 1] > 0.97, name
    # Min-max scaled to the full 8-bit range like the 8-bit original, not clipped at 255 or left dark.
    assert abs(int(pixels["sixteen.png"].max()) - int(pixels["l.png"].max())) <= 12


def test_near_duplicates_stay_in_one_carved_split(tmp_path, make_class_folder):
    src = make_class_folder(tmp_path / "src", per_class=12, seed=8)
    for k in range(6):
        with Image.open(src / "left" / f"left_8_{k}.png") as img:
            img.save(src / "left" / f"again_{k}.jpg", quality=92)
    grouped = read_manifest(_prepare(src, tmp_path / "g", val_fraction=0.3, test_fraction=0.3, seed=1))
    card = json.loads((tmp_path / "g" / "card.json").read_text())
    assert card["near_duplicates"]["pairs"] >= 6 and card["near_duplicates"]["crossing_splits"] == 0
    apart = _prepare(src, tmp_path / "a", val_fraction=0.3, test_fraction=0.3, seed=1, group_near_duplicates=False)
    assert json.loads((apart / "card.json").read_text())["near_duplicates"]["crossing_splits"] > 0
    assert len(grouped) == 30


def test_unreadable_files_are_named_within_the_source(class_folder, tmp_path):
    """Cold-test finding: the card and errors.csv listed damaged files by their absolute path."""
    (class_folder / "left" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = _prepare(class_folder, tmp_path / "out")
    shared = (out / "card.md").read_text() + (out / "card.json").read_text() + (out / "errors.csv").read_text()
    assert "broken.png" in shared and str(class_folder) not in shared
