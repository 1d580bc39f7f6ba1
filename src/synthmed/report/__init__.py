"""The HTML report: one self-contained file from an evaluation folder's metrics.json and figures."""

from synthmed.report.build import build_report, resolve_eval_dir

__all__ = ["build_report", "resolve_eval_dir"]
