"""Real folders from ../shared/data (linked, never copied): known duplicates are found, leakage flagged."""

import json
from pathlib import Path

from synthmed.data.prepare import PrepareConfig, prepare_dataset


def _link_tree(files: list[Path], source: Path, target: Path) -> None:
    for path in files:
        link = target / path.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(path)


def test_listed_duplicates_of_covid_set_are_found(shared_data, tmp_path):
    source = shared_data / "cxr_covid19_3class"
    listed = [
        line.split("\t")
        for line in (source / "duplicates_md5.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    files = [source / p for group in listed for p in group]
    files += sorted((source / "train" / "Normal").iterdir())[:6] + sorted((source / "test" / "Normal").iterdir())[:3]
    _link_tree(files, source, tmp_path / "src")
    out = prepare_dataset(tmp_path / "src", out_dir=tmp_path / "out", config=PrepareConfig(size_px=32, workers=1))
    card = json.loads((out / "card.json").read_text())
    found = {frozenset(g["sources"]) for g in card["exact_duplicates"]["list"]}
    assert {frozenset(group) for group in listed} <= found
    crossing = sum(len({p.split("/")[0] for p in group}) > 1 for group in listed)
    assert card["exact_duplicates"]["crossing_splits"] == crossing > 0
    assert any("cross splits" in w for w in card["warnings"])
