"""Generic rendering of metrics.json values: numbers, intervals, tables, nested groups."""

from __future__ import annotations

from synthmed.report.render import collect_figures, format_scalar, to_node


def test_scalars_are_short_and_readable() -> None:
    assert format_scalar(0.91234) == "0.912"
    assert format_scalar(12345) == "12,345"
    assert format_scalar(None) == "—"
    assert format_scalar(True) == "yes"
    assert format_scalar(float("nan")) == "n/a"
    assert format_scalar(3.2e-6) == "3.20e-06"
    assert format_scalar("x" * 1000).endswith("…")


def test_both_interval_styles_render_as_value_and_brackets() -> None:
    node = to_node({"value": 3.2, "ci95": [2.9, 3.6], "n": 200})
    assert node == {"kind": "text", "text": "3.2 [2.9, 3.6]", "muted": "n 200"}
    node = to_node({"mean": 0.8, "ci_low": 0.7, "ci_high": 0.9, "std_over_seeds": 0.01, "per_seed": [0.79, 0.81]})
    assert node["text"] == "0.8 [0.7, 0.9]" and "per seed: 0.79, 0.81" in node["muted"]


def test_dict_of_flat_dicts_becomes_one_table() -> None:
    node = to_node({"synthetic": {"fid": 3.0, "kid": 0.1}, "real_floor": {"fid": 2.0, "recall": 0.5}})
    assert node["kind"] == "table"
    assert node["columns"] == ["fid", "kid", "recall"]
    assert [row["key"] for row in node["rows"]] == ["synthetic", "real floor"]
    assert node["rows"][1]["cells"][1]["text"] == "—"


def test_mixed_dict_keeps_scalars_and_puts_siblings_side_by_side() -> None:
    node = to_node(
        {"ratio": 1.1, "synthetic": {"fid": 3.0}, "real_floor": {"fid": 2.0}, "deep": {"a": {"b": {"c": 1}}}}
    )
    assert node["kind"] == "group"
    assert node["leaves"]["rows"][0]["key"] == "ratio"
    assert [row["key"] for row in node["table"]["rows"]] == ["synthetic", "real floor"]
    assert [child["key"] for child in node["children"]] == ["deep"]


def test_lists_of_records_and_matrices_become_tables() -> None:
    records = to_node([{"id": "a", "score": 0.5}, {"id": "b", "score": 0.25}])
    assert records["kind"] == "table" and records["columns"] == ["id", "score"] and len(records["rows"]) == 2
    matrix = to_node([[1, 2], [3, 4]])
    assert matrix["kind"] == "table" and matrix["rows"][1]["cells"][0]["text"] == "3"


def test_figures_are_found_at_any_depth() -> None:
    value = {
        "figures": [{"title": "a", "path": "x/a.png"}],
        "per_class": {"c": {"figures": [{"title": "b", "path": "x/b.png"}, {"title": "no path"}]}},
    }
    assert [f["path"] for f in collect_figures(value)] == ["x/a.png", "x/b.png"]
