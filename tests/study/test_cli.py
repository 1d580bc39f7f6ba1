"""`synthmed study create / add-reader / close / analyze` run in-process on tiny image folders."""

from __future__ import annotations

import json

from study.helpers import accept_invitation, answer, new_client
from synthmed.cli import main
from synthmed.study.app import create_app
from synthmed.study.settings import StudySettings


def test_create_add_reader_close_analyze(tmp_path, image_folders, capsys, monkeypatch):
    real, synthetic = image_folders
    out = tmp_path / "study"
    monkeypatch.setenv("SYNTHMED_STUDY_ADMIN_PASSWORD", "from-the-env-123")
    code = main(
        [
            "study",
            "create",
            "--real",
            str(real),
            "--synthetic",
            str(synthetic),
            "--out",
            str(out),
            "--cases",
            "8",
            "--synthetic-fraction",
            "0.5",
            "--reader",
            "ann",
            "--reader",
            "ben",
            "--seed",
            "2",
            "--conditions",
            "effusion,pneumonia",
            "--size-px",
            "16",
            "--allow-unblinded",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0 and "4 real + 4 synthetic" in printed and "from-the-env-123" in printed
    invitations = {
        line.split()[1].rstrip(":"): line.split("/invite/")[1]
        for line in printed.splitlines()
        if line.startswith("invite ")
    }
    assert set(invitations) == {"ann", "ben"}
    assert main(["study", "add-reader", str(out), "cy"]) == 0
    assert "/invite/" in capsys.readouterr().out

    app = create_app(StudySettings(study_dir=out))
    client = new_client(app)
    accept_invitation(client, invitations["ann"])
    for position in range(1, 9):
        answer(client, position, "fake", 4)
    assert main(["study", "analyze", str(out), "--json", str(tmp_path / "s.json")]) == 0
    assert "interim" in capsys.readouterr().out
    assert main(["study", "close", str(out)]) == 0
    assert (
        main(["study", "analyze", str(out), "--json", str(tmp_path / "s.json"), "--csv", str(tmp_path / "a.csv")]) == 0
    )
    printed = capsys.readouterr().out
    result = json.loads((tmp_path / "s.json").read_text())
    assert result["verdict"] in printed and result["study"]["closed"] and result["study"]["readers"] == 3
    assert result["per_reader"]["ann"]["sensitivity"]["value"] == 1.0
    assert len((tmp_path / "a.csv").read_text().splitlines()) == 9
    closed = answer(client, 1, "real", 1)
    assert closed.status_code == 409


def test_cli_errors_are_clear_and_leave_nothing(tmp_path, image_folders, capsys):
    real, synthetic = image_folders
    code = main(
        [
            "study",
            "create",
            "--real",
            str(real),
            "--synthetic",
            str(synthetic),
            "--out",
            str(tmp_path / "s"),
            "--cases",
            "500",
        ]
    )
    assert code == 2 and "ask for fewer" in capsys.readouterr().err and not (tmp_path / "s").exists()
    assert main(["study", "close", str(tmp_path / "nope")]) == 2
    assert "not a study folder" in capsys.readouterr().err
    code = main(["study", "create", "--synthetic", str(synthetic), "--out", str(tmp_path / "t"), "--cases", "4"])
    assert code == 2 and "needs --real" in capsys.readouterr().err
    assert (
        main(
            [
                "study",
                "create",
                "--synthetic",
                str(synthetic),
                "--out",
                str(tmp_path / "u"),
                "--cases",
                "4",
                "--synthetic-fraction",
                "1.5",
            ]
        )
        == 2
    )
