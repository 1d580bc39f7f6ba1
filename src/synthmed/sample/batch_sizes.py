"""Default sampling batch sizes per device type (images per batch, rows per UNet call); imports no torch."""

from __future__ import annotations

# (batch_size, model_batch_size) for a device type; types not named here (e.g. mps) use "cpu"'s.
# - cpu: 16 rows per UNet call keep a 1-2 thread CPU busy without wasting time on padded rows, and
#   are the values every CPU-made set so far used (so CPU sets stay bit-identical).
# - cuda: measured on an H200 (bench/sample_chunks.py, BENCHMARKS.md "Sampling speed per UNet chunk size"):
#   the 114M-parameter '256' preset at 256 px (DPM-Solver++ 20 steps, guidance 2, bf16) is compute-bound
#   already at 16 rows: 285 UNet rows/s at 16, 327 at 32, 343 at 64 (1.20x; 12 GiB peak). 64 rows take the
#   gain and leave room on 16-24 GB cards at 256 px (an out-of-memory error names --model-batch-size);
#   models at 32-64 px need 16-64x less per row. 128 images per batch = 2 calls per step unguided, 4 guided.
DEVICE_BATCH_SIZES: dict[str, tuple[int, int]] = {"cpu": (32, 16), "cuda": (128, 64)}


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
