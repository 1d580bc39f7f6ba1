"""Assemble BENCHMARKS.md from the per-area result pages in bench/results/ (run after any benchmark)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ("pipeline", "generate", "data", "evaluate", "report", "study", "textgen")
HEADER = """# Benchmarks

Figures measured by the scripts in `bench/`, each with the command that produced it. Every speed
figure is a ratio against a baseline measured in the same run. Machine unless stated: the project's
2-core x86_64 VM (AVX2, no native bf16, no GPU, 24 GiB). The first session's figures were mostly
taken while several other jobs shared the two cores; the second session's (training throughput,
sampler quality, class balancing at equal steps, the full evaluation, TSTR with the torchvision
architectures) on a quiet machine. Each section says which; ratios are what to compare. No GPU
device was lent to either session, so the GPU rows (256 px throughput against the reference model's
37 images/s on a Quadro RTX 8000, and latent vs pixel at 256 px) await a session with one; the
commands to produce them are given.

Regenerate this page with `.venv/bin/python bench/assemble_benchmarks.py`.

"""


def demote(markdown: str) -> str:
    """Shift every heading one level down so each page nests under this page's title."""
    return re.sub(r"^(#{1,5}) ", lambda m: "#" + m.group(1) + " ", markdown, flags=re.M)


def main() -> None:
    parts = [HEADER]
    pages = {p.stem: p for p in (ROOT / "bench" / "results").glob("*.md")}
    for name in list(ORDER) + sorted(set(pages) - set(ORDER)):
        if name in pages:
            text = pages[name].read_text().strip()
            text = re.sub(r"\]\((?!https?:|/|#|bench/)", "](bench/results/", text)  # page-relative links
            parts.append(demote(text) + "\n")
    (ROOT / "BENCHMARKS.md").write_text("\n".join(parts))
    print(f"wrote {ROOT / 'BENCHMARKS.md'}")


if __name__ == "__main__":
    main()
