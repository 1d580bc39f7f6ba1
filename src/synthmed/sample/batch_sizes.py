"""Default sampling batch sizes per device type (images per batch, rows per UNet call); imports no torch."""

from __future__ import annotations

# (batch_size, model_batch_size) for a device type; types not named here (e.g. mps) use "cpu"'s.
# - cpu: 16 rows per UNet call keep a 1-2 thread CPU busy without wasting time on padded rows, and
#   are the values every CPU-made set so far used (so CPU sets stay bit-identical).
# - cuda: 16 rows left most of an H200 idle (11.9 images/s denoising at 256 px, DPM-Solver++ 20
#   steps, bf16). 128 rows per call: the 114M-parameter '256' preset at 256 px holds about 250 MiB
#   of activations per row in float32 (measured on CPU, one forward pass; bf16 autocast about half),
#   so 128 rows need roughly 16-32 GiB: room on a 40-141 GB card; on a 16-24 GB card at 256 px pass
#   model_batch_size 32-64 (an out-of-memory error says so). Models at 32-64 px need 16-64x less per
#   row, and gain most from wide calls. bench/sample_chunks.py times 16-256 rows.
#   256 images per batch = 2 calls per step unguided, 4 guided: no padded rows.
DEVICE_BATCH_SIZES: dict[str, tuple[int, int]] = {"cpu": (32, 16), "cuda": (256, 128)}


def default_batch_sizes(device_type: str, *, processes: int = 1) -> tuple[int, int]:
    """(batch_size, model_batch_size) for a device type ('cpu', 'cuda', ...), as SampleConfig's None resolves.

    batch_size is the per-device default times `processes` (under `accelerate launch` each process
    denoises 1/processes of every batch), so every device gets its default share; the images do not
    depend on it. model_batch_size (rows per UNet call) may change the images' low bits (kernels round
    differently for different row counts, on a GPU above all): record it.
    """
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}.")
    batch_size, model_batch_size = DEVICE_BATCH_SIZES.get(device_type, DEVICE_BATCH_SIZES["cpu"])
    return batch_size * processes, model_batch_size
