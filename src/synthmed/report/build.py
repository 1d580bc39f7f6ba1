"""Build one self-contained HTML report (images inlined as data URIs) from EVAL_DIR/metrics.json."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import platform
import shutil
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from synthmed import __version__
from synthmed.files import atomic_write_text, portable_name
from synthmed.report import paper_tables, provenance
from synthmed.report.grids import class_grids
from synthmed.report.render import STATUS_LABELS, STATUSES, collect_figures, humanise_key, to_node

log = logging.getLogger(__name__)

METRICS_NAME = "metrics.json"
STUDY_NAME = "study.json"
SECTIONS = {  # key in metrics.json -> (title, what the section answers)
    "fidelity": (
        "Fidelity",
        "Do the synthetic images look like real ones, as a group? Always read beside the "
        "real-vs-real floor: held-out real images scored the same way.",
    ),
    "diversity": (
        "Diversity",
        "Are the synthetic images varied? High within-class MS-SSIM means near-identical images (mode collapse).",
    ),
    "memorisation": (
        "Memorisation and privacy",
        "Are any synthetic images copies of training images? Each "
        "synthetic image is matched with its nearest training image.",
    ),
    "usefulness": (
        "Usefulness",
        "Can a classifier trained on synthetic images work on real ones? (TSTR: train "
        "synthetic, test real; TRTR: train real, test real.) Tables: usefulness/results.csv and "
        "results.tex; trained classifiers: usefulness/classifiers/.",
    ),
    "beside_the_paper": (
        "Beside the paper",
        "How do this run's classifiers compare with the figure the paper published for the same arm? "
        "Tables (CSV, Markdown, LaTeX): RUN/tables/paper_comparison.*, written from the usefulness results.",
    ),
    "condition_fidelity": (
        "Condition fidelity",
        "Does each synthetic image show the class it was generated "
        "for, according to a classifier trained on real images?",
    ),
    "explanations": (
        "Explanations",
        "Where do the classifiers trained on real and on synthetic images look, in "
        "real and in synthetic images? (Grad-CAM: red = most used; LIME: green supports the class, red "
        "opposes it.) A flat map means the explainer failed, not the images.",
    ),
    "study": ("Reader study", "Could human readers tell real from synthetic images?"),
}
TRAILING = {
    "inputs": ("Inputs and provenance", "What was compared, and how this report was made."),
    "timings_s": ("Time per part", "Seconds spent on each part of the evaluation."),
}
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
}


def resolve_eval_dir(path: str | Path) -> Path:
    """EVAL_DIR itself, or RUN/eval when given a run folder; a clear error when neither has metrics.json."""
    path = Path(path)
    for candidate in (path, path / "eval"):
        if (candidate / METRICS_NAME).is_file():
            return candidate
    raise FileNotFoundError(
        f"No {METRICS_NAME} in {path} or {path / 'eval'}. Run `synthmed evaluate ... --out EVAL_DIR` first, then "
        f"`synthmed report EVAL_DIR` (or pass the run folder that holds eval/)."
    )


def _fid_status(section: dict) -> str | None:
    ratio = (section.get("overall") or {}).get("fid_ratio_to_floor")
    if not isinstance(ratio, (int, float)):
        return None
    return "good" if ratio < 1.5 else "fair" if ratio < 4 else "poor"


def _diversity_status(section: dict) -> str | None:
    """Same rule as the diversity verdict: a class whose synthetic MS-SSIM is well above the real one."""
    worst = None
    for entry in (section.get("per_class") or {}).values():
        synth, real = entry.get("synthetic", {}).get("mean"), entry.get("real", {}).get("mean")
        if isinstance(synth, (int, float)) and isinstance(real, (int, float)):
            excess = synth - real - 0.1 * (1 - real)
            worst = excess if worst is None else max(worst, excess)
    return None if worst is None else "good" if worst <= 0.05 else "fair" if worst <= 0.15 else "poor"


def _memorisation_status(section: dict) -> str | None:
    share = section.get("share_flagged")
    if not isinstance(share, (int, float)):
        return None
    return "good" if share == 0 else "fair" if share <= 0.01 else "poor"


STATUS_RULES: dict[str, Callable[[dict], str | None]] = {
    "fidelity": _fid_status,
    "diversity": _diversity_status,
    "memorisation": _memorisation_status,
}
"""Colour for sections that carry no "status" of their own (computed from their own numbers)."""

RUN_STATES = {"failed": "poor", "pending": "info", "skipped": "info", "not available": "info"}
"""A section's "status" when it holds no result (written by the evaluate orchestrator)."""


def _status(key: str, section: Any) -> tuple[str, str]:
    """(colour class, badge label) for a section."""
    if isinstance(section, dict):
        status = section.get("status")
        if isinstance(status, str) and status.lower() in STATUSES:
            return status.lower(), STATUS_LABELS[status.lower()]
        if isinstance(status, str) and status.lower() in RUN_STATES:
            return RUN_STATES[status.lower()], status.capitalize()
        rule = STATUS_RULES.get(key)
        if rule is not None:
            try:
                colour = rule(section) or "info"
            except (TypeError, AttributeError):
                colour = "info"
            return colour, STATUS_LABELS[colour]
    return "info", STATUS_LABELS["info"]


RESTS_ON_MARK = " Rests on: "


def _verdict(section: Any) -> tuple[str | None, str | None]:
    """(verdict, what it rests on): a verdict's trailing 'Rests on: ...' or the section's "rests_on" field."""
    if not isinstance(section, dict):
        return None, None
    rests_on = section.get("rests_on")
    rests_on = rests_on.get("text") if isinstance(rests_on, dict) else rests_on
    rests_on = str(rests_on) if rests_on else None
    for key in ("verdict", "error", "note"):
        if section.get(key):
            text = str(section[key])
            if key == "verdict" and RESTS_ON_MARK in text:
                text, tail = text.split(RESTS_ON_MARK, 1)
                rests_on = rests_on or tail
            return text, rests_on
    return None, rests_on


def _data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _embed_figure(figure: dict, eval_dir: Path) -> dict:
    """{"title", "src" (data URI) or "error"}: only image files inside EVAL_DIR are embedded."""
    title = str(figure.get("title") or Path(figure["path"]).stem)
    path = (eval_dir / figure["path"]).resolve()
    mime = IMAGE_TYPES.get(path.suffix.lower())
    if not path.is_relative_to(eval_dir.resolve()):
        return {"title": title, "error": f"not embedded: {figure['path']} lies outside the evaluation folder"}
    if mime is None:
        return {"title": title, "error": f"not embedded: {figure['path']} is not an image file"}
    if not path.is_file():
        return {"title": title, "error": f"figure file missing: {figure['path']}"}
    return {"title": title, "src": _data_uri(path.read_bytes(), mime)}


def _section(key: str, value: Any, eval_dir: Path, titles: dict) -> dict:
    title, question = titles.get(key, (humanise_key(key).capitalize(), ""))
    colour, label = _status(key, value)
    verdict, rests_on = _verdict(value)
    return {
        "key": key,
        "anchor": f"section-{key}",
        "title": title,
        "question": question,
        "verdict": verdict,
        "rests_on": rests_on,
        "status": colour,
        "status_label": label,
        "figures": [_embed_figure(f, eval_dir) for f in collect_figures(value)],
        "body": to_node(value),
    }


def shareable(value: Any) -> Any:
    """`value` with every absolute path (a string starting at the file-system root or home) as its short name."""
    if isinstance(value, dict):
        return {k: shareable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shareable(v) for v in value]
    if isinstance(value, str) and (value.startswith(("/", "~")) and "\n" not in value and len(value) < 4096):
        return portable_name(value)
    return value


def _provenance(metrics_path: Path, eval_dir: Path) -> dict:
    return {
        "evaluation folder": portable_name(eval_dir),
        "metrics.json sha256": hashlib.sha256(metrics_path.read_bytes()).hexdigest(),
        "report generated (UTC)": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "synthmed version": __version__,
        "python": platform.python_version(),
    }


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("synthmed.report", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["data_uri"] = _data_uri
    return env


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); re-run `synthmed evaluate` to rewrite it.") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object with one key per section, not {type(data).__name__}.")
    return data


def build_report(eval_dir: Path, *, out_path: Path | None = None, title: str | None = None) -> Path:
    """Write the HTML report for EVAL_DIR (or RUN/eval) and return its path (default EVAL_DIR/report.html).

    metrics.json is copied beside the HTML file for machines. Known sections get their own titles and
    order; any other key renders generically as tables; every "figures" entry is embedded.
    """
    eval_dir = resolve_eval_dir(eval_dir)
    metrics_path = eval_dir / METRICS_NAME
    metrics = _read_json(metrics_path)
    run_status = metrics.pop("status", None)  # the orchestrator's {"failed_parts": [...]}
    failed = run_status.get("failed_parts") if isinstance(run_status, dict) else None
    tables = paper_tables.write_run_tables(eval_dir, metrics.get("usefulness"))  # in a `synthmed run`
    if tables is not None:
        metrics["beside_the_paper"] = paper_tables.report_section(tables)
    if (eval_dir / STUDY_NAME).is_file() and "study" not in metrics:
        metrics["study"] = _read_json(eval_dir / STUDY_NAME)
    out_path = Path(out_path) if out_path is not None else eval_dir / "report.html"

    # Sample grids from the input folders named in metrics.json (absolute paths there, for machines).
    inputs = raw_inputs if isinstance(raw_inputs := metrics.get("inputs"), dict) else {}

    # Sections in pipeline order, then unknown keys, then inputs and timings; paths shown as short names, since
    # the report is the file people share and an absolute path carries the operator's folders and user name.
    shown = shareable(metrics)
    titles = {**SECTIONS, **TRAILING}
    known = [k for k in SECTIONS if k in shown]
    unknown = [k for k in shown if k not in SECTIONS and k not in TRAILING]
    sections = [_section(k, shown[k], eval_dir, titles) for k in [*known, *unknown]]
    trailing = [_section(k, shown[k], eval_dir, titles) for k in TRAILING if k in shown]
    grids, grid_note = class_grids(inputs, base=eval_dir)
    card, generator = provenance.dataset_card(inputs, base=eval_dir), provenance.generator(inputs, base=eval_dir)

    html = (
        _environment()
        .get_template("report.html.j2")
        .render(
            title=title or "Synthetic image evaluation",
            subtitle=_subtitle(inputs),
            sections=sections,
            trailing=trailing,
            failed_parts=failed or [],
            grids=grids,
            grid_note=grid_note,
            card=card,
            generator=generator,
            provenance=to_node(_provenance(metrics_path, eval_dir)),
        )
    )
    copy_target = out_path.parent / METRICS_NAME
    copy = copy_target.resolve() != metrics_path.resolve()
    if copy and copy_target.is_file() and copy_target.read_bytes() != metrics_path.read_bytes():
        raise FileExistsError(
            f"{copy_target} belongs to another evaluation and the report would replace it with this one's "
            f"metrics.json: write the report elsewhere (--out) or into {eval_dir}."
        )
    atomic_write_text(out_path, html)
    out_path.chmod(0o644)  # a report is meant to be shared (atomic writes create 0600 files)
    if copy:
        shutil.copyfile(metrics_path, copy_target)
    log.info("Wrote report %s (%d sections)", out_path, len(sections) + len(trailing))
    return out_path


def _subtitle(inputs: dict) -> str:
    """'tiny-blobs (chest x-ray) · real train 24, real test 12, synthetic 24' from the inputs section."""
    name = inputs.get("dataset_name") or next(
        (Path(v).name for k in ("real_dataset", "synthetic_set") if isinstance(v := inputs.get(k), str) and v), ""
    )
    text = f"{name} ({inputs['modality']})" if name and inputs.get("modality") else str(name)
    counts = raw_counts if isinstance(raw_counts := inputs.get("counts"), dict) else {}
    shown = [f"{humanise_key(k)} {v:,}" for k, v in counts.items() if isinstance(v, int) and not isinstance(v, bool)]
    return " · ".join(part for part in (text, ", ".join(shown)) if part)
