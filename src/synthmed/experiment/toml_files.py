"""Read an experiment file (TOML, or YAML with the same tables) with the files it `extends` merged underneath."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import tomllib

YAML_SUFFIXES = (".yaml", ".yml")


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`base` with `override` merged in, table by table (override wins; neither is modified)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_toml(path: Path, *, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The file's tables, with those of the file it `extends` (a path relative to it) merged underneath."""
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the experiment file in it (e.g. {path}/NAME.toml).")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such experiment file (see experiments/ for examples).")
    raw = _read_tables(path)
    base = raw.pop("extends", None)
    if base is None:
        return raw
    base_path = _extended_path(path, str(base))
    if base_path in seen:
        raise ValueError(f"{path}: extends {base} makes a loop; remove one of the `extends` keys.")
    inherited = load_toml(base_path, seen=(*seen, base_path))
    root = inherited.get("data_root")
    if isinstance(root, str) and not Path(root).expanduser().is_absolute():
        inherited["data_root"] = str(base_path.parent / root)  # relative to the file that says it
    data, base_data = raw.get("data"), inherited.get("data")
    if isinstance(data, dict) and isinstance(base_data, dict):
        for chosen, other in (("source", "prepared"), ("prepared", "source")):
            if chosen in data:  # the extending file picks its own kind of data
                base_data.pop(other, None)
    return merge(inherited, raw)


def _read_tables(path: Path) -> dict[str, Any]:
    """The top-level tables of one file: YAML for a .yaml/.yml name, TOML otherwise (tables merge key by key)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text file; an experiment file is TOML or YAML text.") from None
    if path.suffix.lower() not in YAML_SUFFIXES:
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path} is not valid TOML: {exc}") from None
    import yaml

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
        raise ValueError(f"{path}: a YAML experiment file is a mapping of keys to tables, as the TOML files are.")
    return raw


def _extended_path(path: Path, base: str) -> Path:
    """The file `path` extends: an absolute (or ~) path as given, a relative one inside `path`'s folder."""
    given = Path(base).expanduser()
    if given.is_absolute():
        return given.resolve()
    folder = path.resolve().parent
    resolved = (folder / given).resolve()
    if not resolved.is_relative_to(folder):
        raise ValueError(
            f"{path}: extends {base!r} points outside {folder}; a relative `extends` names a file in that folder "
            f"(or below it). Copy the base file there, or give its absolute path to extend it deliberately."
        )
    return resolved
