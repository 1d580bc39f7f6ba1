"""Feature extraction as 2 processes (accelerate launch, gloo on CPU): each runs its share of the batches and
every process gets all features, in order, equal to one process's."""

from __future__ import annotations

import runpy
import sys

import numpy as np

from launch_helpers import launch

# 23 images in batches of 5: 5 batches, so the processes do 3 and 2 of them and the last batch is short.
SCRIPT = """
import logging
import sys
import numpy as np
import torch
from synthmed.evaluate.encoder import DomainEncoder, DomainExtractor, EncoderSettings

logging.basicConfig(level=logging.INFO)
settings = EncoderSettings(input_size_px=16, width=8, feature_dim=16)
with torch.random.fork_rng(devices=[]):
    torch.manual_seed(3)
    model = DomainEncoder(channels=1, num_classes=2, width=settings.width, feature_dim=settings.feature_dim)
pixels = np.random.default_rng(0).integers(0, 256, (23, 1, 16, 16), dtype=np.uint8)
features = DomainExtractor(model, settings=settings, record={}, batch_size=5)(pixels)
rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
np.save(f"{sys.argv[1]}/features-{rank}.npy", features)
"""


def test_two_processes_extract_the_features_of_one(tmp_path, monkeypatch):
    script = tmp_path / "extract.py"
    script.write_text(SCRIPT)
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    monkeypatch.setattr(sys, "argv", [str(script), str(tmp_path / "one")])
    runpy.run_path(str(script), run_name="__main__")  # this test's own process: one process of one
    done = launch([str(script), str(tmp_path / "two")])
    assert "process 1 of 2 (gloo)" in done.stderr  # the batches were shared, not all done twice
    reference = np.load(tmp_path / "one" / "features-0.npy")
    assert reference.shape == (23, 16) and np.isfinite(reference).all() and reference.std() > 0
    for rank in (0, 1):  # every process gets all rows, in order
        np.testing.assert_array_equal(np.load(tmp_path / "two" / f"features-{rank}.npy"), reference)
