"""Pluggable feature extractors (pretrained Inception / chest X-ray DenseNet from local weights) behind one protocol.

Every extractor maps uint8 images `[N, C, H, W]` to float32 features `[N, D]` in batches without
gradients, and says which network (`name`), which layer (`layer`), at which input size
(`input_size_px`) and with which resizing (`resize_method`) the features were taken, so every
metric can record them. Pretrained weights are only ever read from a local file: synthmed never
downloads. The domain encoder (trained on the user's own real images) lives in
`synthmed.evaluate.encoder`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from synthmed.sample.shard import ProcessShard, current_shard

log = logging.getLogger(__name__)

CACHE_ENV = "SYNTHMED_CACHE"


@runtime_checkable
class FeatureExtractor(Protocol):
    """What every extractor offers: metadata for the record, and uint8 images -> float32 features."""

    name: str
    layer: str
    input_size_px: int
    resize_method: str

    def __call__(self, pixels_uint8: np.ndarray | torch.Tensor) -> np.ndarray: ...


class WeightsNotFoundError(FileNotFoundError):
    """A pretrained extractor's weights file is not on this machine (synthmed never downloads)."""


class WeightsFileError(ValueError):
    """A pretrained extractor's weights file is there but damaged or of another network."""


@dataclass(frozen=True)
class PretrainedWeights:
    """A pretrained weights file: the exact file name expected and where a user can get it."""

    extractor: str
    filename: str
    url: str
    about: str


INCEPTION_WEIGHTS = PretrainedWeights(
    extractor="inception",
    filename="pt_inception-2015-12-05-6726825d.pth",
    url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/pt_inception-2015-12-05-6726825d.pth",
    about="torch-fidelity's port of the TF FID Inception-v3 (ImageNet)",
)
XRV_WEIGHTS = PretrainedWeights(
    extractor="xrv",
    filename="nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
    url="https://github.com/mlmed/torchxrayvision/releases/download/v1/"
    "nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt",
    about="torchxrayvision densenet121-res224-all (chest X-rays, 18 pathologies)",
)


def default_cache_dir() -> Path:
    """`$SYNTHMED_CACHE` when set, else `~/.cache/synthmed`."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "synthmed").expanduser()


def resolve_weights(
    weights: PretrainedWeights, *, weights_path: str | Path | None = None, cache_dir: str | Path | None = None
) -> Path:
    """The local weights file to load: `weights_path` if given, else `<cache_dir>/<filename>`.

    Raises WeightsNotFoundError naming the exact file expected and how to get it.
    """
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                f"--weights {path} does not exist. For --extractor {weights.extractor} give the file "
                f"{weights.filename} ({weights.about}), downloaded on a machine with internet from {weights.url}."
            )
        check_weights_file(weights, path)
        return path
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = folder / weights.filename
    if not path.is_file():
        raise WeightsNotFoundError(
            f"--extractor {weights.extractor} needs the weights file {path} ({weights.about}), which is not there. "
            f"synthmed never downloads: on a machine with internet run `curl -L -o {weights.filename} {weights.url}`, "
            f"copy the file to {folder}/ (or set ${CACHE_ENV}, or pass --weights PATH), "
            f"or use --extractor domain, which needs no download."
        )
    check_weights_file(weights, path)
    return path


_CHECKED: set[tuple[str, int, int]] = set()


def check_weights_file(weights: PretrainedWeights, path: Path) -> None:
    """Read `path` once (per size and mtime) to prove it is a readable state dict for `weights`.

    A truncated, damaged or foreign file raises a ValueError naming it and the file expected, so
    `synthmed evaluate` stops (exit 2) before it writes anything.
    """
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _CHECKED:
        return
    fix = (
        f"--extractor {weights.extractor} expects {weights.filename} ({weights.about}): download it again from "
        f"{weights.url} on a machine with internet and replace the file"
    )
    try:
        if weights.extractor == "xrv":
            state = load_xrv_state_dict(path)
            try:
                build_xrv_densenet().load_state_dict(state, strict=True)
            except RuntimeError as exc:
                detail = " ".join(str(exc).split())[:200]
                raise WeightsFileError(
                    f"{path} is not a densenet121-res224-all weights file ({detail}); {fix}."
                ) from None
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (ImportError, WeightsFileError):
        raise
    except Exception as exc:  # noqa: BLE001 - unpickling fails in many ways; all mean a damaged or foreign file
        detail = " ".join(str(exc).split())[:200]
        raise WeightsFileError(
            f"{path} is damaged or not a weights file ({type(exc).__name__}: {detail}); {fix}."
        ) from exc
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsFileError(f"{path} does not hold a state dict of tensors; {fix}.")
    _CHECKED.add(key)


def _as_tensor(pixels_uint8: np.ndarray | torch.Tensor) -> torch.Tensor:
    tensor = torch.as_tensor(pixels_uint8)
    if tensor.dtype != torch.uint8 or tensor.ndim != 4:
        raise ValueError(
            f"feature extractors take uint8 images [N, C, H, W]; got {tuple(tensor.shape)} {tensor.dtype}."
        )
    return tensor


def run_batched(
    fn: Callable[[torch.Tensor], torch.Tensor],
    pixels_uint8: np.ndarray | torch.Tensor,
    *,
    batch_size: int,
    shard: ProcessShard | None = None,
) -> np.ndarray:
    """Apply `fn` (uint8 batch -> features) over `pixels_uint8` in batches, without gradients.

    Under `accelerate launch` / torchrun (`shard` None: this process's), process p runs batches p, p + N, ...
    and every process gets all rows in order: the same batches as one process, so the same features.
    """
    pixels = _as_tensor(pixels_uint8)
    shard = shard or current_shard()
    chunks = []
    with torch.inference_mode():
        for start in shard.share(range(0, len(pixels), batch_size)):
            rows = min(batch_size, len(pixels) - start)
            chunks.append(fn(pixels[start : start + batch_size]).float().reshape(rows, -1).cpu())
    chunks = cast(list, shard.gather(chunks, to_all=True))
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(chunks).numpy().astype(np.float32, copy=False)


class InceptionExtractor:
    """ImageNet Inception-v3 pool features (2048-d) through torchmetrics / torch-fidelity, from a local file."""

    name = "inception"
    layer = "pool3 (2048-d, global average pool before the logits)"
    input_size_px = 299
    resize_method = "bilinear (TF1-compatible, torch-fidelity) to 299 px; grey repeated to 3 channels"

    def __init__(
        self, *, weights_path: str | Path | None = None, cache_dir: str | Path | None = None, batch_size: int = 32
    ):
        path = resolve_weights(INCEPTION_WEIGHTS, weights_path=weights_path, cache_dir=cache_dir)
        try:
            from torchmetrics.image.fid import NoTrainInceptionV3
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("--extractor inception needs torch-fidelity: `pip install torch-fidelity`.") from exc
        self.weights_path = path
        self.batch_size = batch_size
        try:
            self.model = NoTrainInceptionV3(
                name="inception-v3-compat", features_list=["2048"], feature_extractor_weights_path=str(path)
            ).eval()
        except RuntimeError as exc:  # load_state_dict: a weights file of another network
            raise ValueError(
                f"{path} is not the Inception-v3 weights file {INCEPTION_WEIGHTS.filename} "
                f"({str(exc).splitlines()[0]}); pass that file with --weights."
            ) from exc

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        if batch.shape[1] == 1:
            batch = batch.expand(-1, 3, -1, -1)
        return self.model(batch)

    def __call__(self, pixels_uint8: np.ndarray | torch.Tensor) -> np.ndarray:
        return run_batched(self._forward, pixels_uint8, batch_size=self.batch_size)


def build_xrv_densenet(*, num_classes: int = 18) -> torch.nn.Module:
    """DenseNet-121 in torchxrayvision's layout (1 grey channel, 224 px, 18 outputs), from torchvision."""
    import torchvision

    model = torchvision.models.densenet121(weights=None, num_classes=num_classes)
    model.features.conv0 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def load_xrv_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from an xrv weights file: either a plain state dict, or torchxrayvision's pickled model."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - the official file is a pickled torchxrayvision model
        try:
            import torchxrayvision  # noqa: F401  (needed to unpickle the official file)
        except ImportError as exc:
            raise ImportError(
                f"{path} is a pickled torchxrayvision model: `pip install torchxrayvision` to read it, "
                f"or save its state_dict() with torch.save and pass that file."
            ) from exc
        obj = torch.load(path, map_location="cpu", weights_only=False)  # a file the user chose to trust
    state = obj.state_dict() if isinstance(obj, torch.nn.Module) else obj
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a DenseNet state dict or model.")
    return {k: v for k, v in state.items() if k != "op_threshs"}


class XRVDenseNetExtractor:
    """torchxrayvision DenseNet-121 (densenet121-res224-all) features for chest X-rays, from a local file."""

    name = "xrv"
    layer = "features.norm5 + ReLU + global average pool (1024-d)"
    input_size_px = 224
    resize_method = "bilinear with antialias to 224 px; RGB averaged to grey; scaled to [-1024, 1024]"

    def __init__(
        self, *, weights_path: str | Path | None = None, cache_dir: str | Path | None = None, batch_size: int = 32
    ):
        path = resolve_weights(XRV_WEIGHTS, weights_path=weights_path, cache_dir=cache_dir)
        model = build_xrv_densenet()
        try:
            model.load_state_dict(load_xrv_state_dict(path), strict=True)
        except RuntimeError as exc:
            raise ValueError(f"{path} is not a densenet121-res224-all weights file ({exc}).") from exc
        self.weights_path = path
        self.model = model.eval()
        self.batch_size = batch_size

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.float().mean(dim=1, keepdim=True)
        x = F.interpolate(
            x, size=(self.input_size_px, self.input_size_px), mode="bilinear", align_corners=False, antialias=True
        )
        x = x / 255.0 * 2048.0 - 1024.0
        features = cast(torch.nn.Module, self.model.features)  # torchvision DenseNet's nn.Sequential trunk
        out = F.relu(features(x))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def __call__(self, pixels_uint8: np.ndarray | torch.Tensor) -> np.ndarray:
        return run_batched(self._forward, pixels_uint8, batch_size=self.batch_size)


PRETRAINED_EXTRACTORS: dict[str, type] = {"inception": InceptionExtractor, "xrv": XRVDenseNetExtractor}
"""Extractors loaded from a local weights file; "domain" (trained here) is in `encoder.py`."""


def describe(extractor: FeatureExtractor) -> dict:
    """The record every metric carries about the features it was computed on."""
    return {
        "extractor": extractor.name,
        "layer": extractor.layer,
        "input_size_px": int(extractor.input_size_px),
        "resize_method": extractor.resize_method,
    }
