"""`synthmed prepare` in process: a folder, the phantom, and errors shown without a traceback."""

import json

from synthmed.cli import main
from synthmed.data.manifest import read_dataset_info


def test_prepare_folder_from_the_cli(class_folder, tmp_path, capsys):
    code = main(
        [
            "prepare",
            str(class_folder),
            "--out",
            str(tmp_path / "out"),
            "--size",
            "16",
            "--workers",
            "1",
            "--patient-id-regex",
            r"(p\w+)_",
            "--fit",
            "crop",
            "--seed",
            "3",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "prepared 16 images of 2 classes" in printed and "card.md" in printed
    card = json.loads((tmp_path / "out" / "card.json").read_text())
    assert card["config"]["fit"] == "crop" and card["config"]["seed"] == 3 and card["patient_ids_known"]


def test_prepare_phantom_from_the_cli(tmp_path, capsys):
    code = main(
        [
            "prepare",
            "phantom",
            "--out",
            str(tmp_path / "ph"),
            "--size",
            "16",
            "--n-per-class",
            "3",
            "--phantom-size",
            "48",
            "--workers",
            "1",
        ]
    )
    assert code == 0
    info = read_dataset_info(tmp_path / "ph")
    assert info.classes == ["cardiomegaly", "consolidation", "normal", "pleural_effusion"] and info.image_size_px == 16
    assert "prepared 12 images" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["prepare", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no image files" in capsys.readouterr().err
    assert main(["prepare", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--window", "nope"]) == 2
    assert "WIDTH,LEVEL" in capsys.readouterr().err
    assert main(["prepare", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--patient-id-regex", "(a"]) == 2
    assert "not a valid regular expression" in capsys.readouterr().err
