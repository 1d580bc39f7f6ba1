"""BENCHMARKS.md is rendered from bench/results/*.json, and each rendered result shows its command."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _render_module():
    spec = importlib.util.spec_from_file_location("bench_render", ROOT / "bench" / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmarks_md_is_the_rendering_of_the_result_files():
    assert (ROOT / "BENCHMARKS.md").read_text() == _render_module().render(), (
        "BENCHMARKS.md is stale or edited by hand: run `.venv/bin/python bench/render.py`"
    )


def test_a_result_renders_its_command_table_and_order(tmp_path):
    render = _render_module()
    result = {
        "name": "zeta",
        "title": "Zeta speed",
        "command": ".venv/bin/python bench/zeta.py --n 3",
        "notes": "",
        "machine": "m",
        "date": "d",
        "sections": [{"heading": "h", "text": "t", "table": {"columns": ["a", "b"], "rows": [[1, 0.5]]}}],
    }
    (tmp_path / "zeta.json").write_text(json.dumps(result))
    (tmp_path / "sample_speed.json").write_text(json.dumps({**result, "name": "sample_speed", "title": "Sampling"}))
    (tmp_path / "alpha.md").write_text("## Alpha\n\nby hand\n")
    text = render.render(tmp_path)
    assert "```bash\n.venv/bin/python bench/zeta.py --n 3\n```" in text and "| 1 | 0.5 |" in text
    assert text.index("## Sampling") < text.index("## Alpha") < text.index("## Zeta speed")  # ORDER, then a-z
    assert "Hand-written page `bench/results/alpha.md`" in text
