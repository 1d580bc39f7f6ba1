"""Report stage: one self-contained HTML report plus metrics.json, from an evaluation folder."""
