"""Image classifiers for evaluation: torchvision VGG-19 / DenseNet-121 / ResNet-50 and a small CPU CNN."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthmed.data.dataset import to_model_range

log = logging.getLogger(__name__)

Arch = Literal["small_cnn", "resnet50", "densenet121", "vgg19"]
ARCHS: tuple[str, ...] = ("small_cnn", "resnet50", "densenet121", "vgg19")
VGG_SCRATCH = "vgg19_bn_gap"
"""The network `vgg19` is built as when no ImageNet weights are given (see `build_classifier`)."""
BUILT_ARCHS: tuple[str, ...] = (*ARCHS, VGG_SCRATCH)
VGG_SCRATCH_DESCRIPTION = (
    "from scratch as vgg19_bn (torchvision's VGG-19 with batch norm, Kaiming-normal init) with a "
    "global-average-pool linear head, LR warm-up"
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SmallCNN(nn.Module):
    """Four conv blocks (conv-BN-ReLU, pooling between them), global average pooling, linear head."""

    def __init__(self, *, num_classes: int, in_channels: int, width: int = 32):
        super().__init__()
        widths = (width, 2 * width, 4 * width, 4 * width)
        blocks, prev = [], in_channels
        for index, out in enumerate(widths):
            layers: list[nn.Module] = [] if index == 0 else [nn.MaxPool2d(2, ceil_mode=True)]
            layers += [nn.Conv2d(prev, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            blocks.append(nn.Sequential(*layers))
            prev = out
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def _torchvision_net(arch: str) -> nn.Module:
    from torchvision import models

    return {"resnet50": models.resnet50, "densenet121": models.densenet121, "vgg19": models.vgg19}[arch](weights=None)


def _vgg19_bn_gap(num_classes: int) -> nn.Module:
    """VGG-19 for training from scratch: torchvision's vgg19_bn (16 convs each followed by batch norm,
    Kaiming-normal conv init) with the 7x7 pool and 4096-wide head replaced by global average pooling
    and one linear layer (pools round up, so 16 px input works). Plain VGG-19 from scratch stays at
    chance (bench/results/vgg_from_scratch.json)."""
    from torchvision import models

    net = models.vgg19_bn(weights=None)
    for layer in cast(nn.Sequential, net.features):
        if isinstance(layer, nn.MaxPool2d):
            layer.ceil_mode = True  # small images (under 32 px) keep a 1x1 map instead of none
    net.avgpool = nn.AdaptiveAvgPool2d(1)
    net.classifier = nn.Sequential(nn.Flatten(), nn.Linear(512, num_classes))
    return net


def built_arch(arch: str, *, has_weights: bool, vgg_recipe: bool = True) -> str:
    """The network `build_classifier` builds for `arch`: vgg19 without ImageNet weights becomes VGG_SCRATCH
    (unless `vgg_recipe` is False, which keeps plain VGG-19 for comparison)."""
    return VGG_SCRATCH if arch == "vgg19" and not has_weights and vgg_recipe else arch


def _weights_url(arch: str) -> str:
    from torchvision import models

    return {
        "resnet50": models.ResNet50_Weights,
        "densenet121": models.DenseNet121_Weights,
        "vgg19": models.VGG19_Weights,
    }[arch].IMAGENET1K_V1.url


def imagenet_weights_filename(arch: str) -> str:
    """torchvision's file name for `arch`'s ImageNet weights (e.g. 'resnet50-0676ba61.pth')."""
    return _weights_url(arch).rsplit("/", 1)[-1]


def check_weights_dir(weights_dir: str | Path, archs: Iterable[str], *, flag: str = "--tstr-weights-dir") -> None:
    """Refuse (before any work) a weights folder that lacks, or holds damaged or wrong, ImageNet weights of `archs`.

    `flag` names the setting in the message (the CLI flag, or the TOML key of `synthmed run`).
    """
    folder = Path(weights_dir)
    wanted = [a for a in archs if a != "small_cnn"]
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{flag} {folder} is not a folder; it should hold "
            f"{_expected_files(wanted) or 'torchvision ImageNet .pth files'}."
        )
    missing = [a for a in wanted if not (folder / imagenet_weights_filename(a)).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{flag} {folder} lacks {', '.join(imagenet_weights_filename(a) for a in missing)}. synthmed never "
            f"downloads at run time: fetch {_expected_files(missing)} on a machine with internet and copy them "
            f"there under exactly those names, or drop {flag} to train from scratch."
        )
    for arch in wanted:
        path = folder / imagenet_weights_filename(arch)
        state = _load_state_dict(path, arch, flag=flag)
        with torch.device("meta"):  # shapes only: no memory, no init
            expected = {k: tuple(v.shape) for k, v in _torchvision_net(arch).state_dict().items()}
        got = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
        if got != expected:
            wrong = sorted(set(expected) ^ set(got)) or [k for k in expected if expected[k] != got[k]]
            raise ValueError(
                f"{path} does not hold torchvision {arch} ImageNet weights ({len(wrong)} tensors differ, e.g. "
                f"{wrong[0]}); {flag} needs {_expected_files([arch])} under that exact name."
            )
        _check_hash_prefix(path, arch, flag=flag)


def _check_hash_prefix(path: Path, arch: str, *, flag: str) -> None:
    """torchvision names each weights file after the start of its SHA-256 ('resnet50-0676ba61.pth'), as its own
    download check does: a file with the right layers but other values (random init, fine-tuned) is refused."""
    import hashlib

    match = re.search(r"-([0-9a-f]{6,})\.", path.name)
    if match is None:
        return
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    got, want = digest.hexdigest(), match.group(1)
    if not got.startswith(want):
        raise ValueError(
            f"{path} has {arch}'s layers but not torchvision's ImageNet values: its SHA-256 begins {got[:8]}, the "
            f"file name says {want} (another {arch} checkpoint, or a damaged copy); {flag} needs "
            f"{_expected_files([arch])} as downloaded, or drop {flag} to train from scratch."
        )


def _expected_files(archs: Iterable[str]) -> str:
    return ", ".join(f"{imagenet_weights_filename(a)} ({_weights_url(a)})" for a in archs)


def _load_state_dict(path: Path, arch: str, *, flag: str = "--tstr-weights-dir") -> dict[str, torch.Tensor]:
    from synthmed.models.weights import load_safetensors, load_torch_file

    fix = (
        f"{flag} needs torchvision's ImageNet weights for {arch} under the exact name "
        f"{imagenet_weights_filename(arch)}: fetch {_weights_url(arch)} on a machine with internet and copy it to "
        f"{path.parent} (or drop {flag} to train from scratch)"
    )
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found. synthmed never downloads at run time; {fix}.")
    try:
        state = load_safetensors(path, fix=fix) if path.suffix == ".safetensors" else load_torch_file(path, fix=fix)
    except (ValueError, OSError):
        raise  # already one line naming the file and the fix
    except Exception as exc:  # noqa: BLE001 - torch's unpickler on junk bytes: KeyError, struct.error, ...
        raise ValueError(f"{path} is damaged or not a PyTorch weights file ({type(exc).__name__}); {fix}.") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict of weights; {fix}.")
    if arch == "densenet121":  # old torchvision checkpoints name 'norm.1' what the model calls 'norm1'
        pattern = re.compile(
            r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
            r"([12]\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
        )
        state = {(m.group(1) + m.group(2) if (m := pattern.match(k)) else k): v for k, v in state.items()}
    return state


def _first_conv_path(arch: str) -> tuple[str, ...]:
    return {"resnet50": ("conv1",), "densenet121": ("features", "conv0")}.get(arch, ("features", "0"))


def _adapt_first_conv(net: nn.Module, arch: str, in_channels: int) -> None:
    """Grey input: replace the RGB first conv by one whose kernel is the sum of the RGB kernels."""
    *parents, name = _first_conv_path(arch)
    parent = net
    for attr in parents:
        parent = getattr(parent, attr)
    old: nn.Conv2d = getattr(parent, name)
    if in_channels == old.in_channels:
        return
    if in_channels != 1:
        raise ValueError(f"in_channels must be 1 or 3, got {in_channels}.")
    # torchvision's first convs are 2-D: their kernel_size/stride/padding are pairs (or a padding mode string)
    new = nn.Conv2d(
        1,
        old.out_channels,
        cast("tuple[int, int]", old.kernel_size),
        cast("tuple[int, int]", old.stride),
        cast("str | tuple[int, int]", old.padding),
        bias=old.bias is not None,
    )
    with torch.no_grad():
        new.weight.copy_(old.weight.sum(dim=1, keepdim=True))
        if old.bias is not None and new.bias is not None:
            new.bias.copy_(old.bias)
    setattr(parent, name, new)


def _submodule(net: nn.Module, name: str) -> nn.Module:
    """`net.<name>` as a Module (nn.Module's __getattr__ is typed `Tensor | Module`)."""
    return cast(nn.Module, getattr(net, name))


def _last_of(net: nn.Module, name: str) -> nn.Module:
    """The last layer of the nn.Sequential `net.<name>`."""
    return cast(nn.Sequential, getattr(net, name))[-1]


def _replace_head(net: nn.Module, arch: str, num_classes: int) -> None:
    if arch == "resnet50":
        net.fc = nn.Linear(cast(nn.Linear, _submodule(net, "fc")).in_features, num_classes)
    elif arch == "densenet121":
        net.classifier = nn.Linear(cast(nn.Linear, _submodule(net, "classifier")).in_features, num_classes)
    else:
        classifier = cast(nn.Sequential, _submodule(net, "classifier"))
        classifier[-1] = nn.Linear(cast(nn.Linear, classifier[-1]).in_features, num_classes)


TARGET_LAYERS: dict[str, Callable[[nn.Module], nn.Module]] = {
    "small_cnn": lambda net: _last_of(net, "features"),
    "resnet50": lambda net: _last_of(net, "layer4"),
    "densenet121": lambda net: _last_of(net, "features"),
    "vgg19": lambda net: _last_of(net, "features"),
    VGG_SCRATCH: lambda net: _last_of(net, "features"),
}
"""The layer Grad-CAM reads for each architecture (the last spatial feature map)."""


class ImageClassifier(nn.Module):
    """A backbone plus its preprocessing: takes float images in [-1, 1] of any size, returns logits.

    Inputs are resized (bilinear) to `image_size_px` and converted to `in_channels`; torchvision
    backbones also get ImageNet normalisation. `classes`, `arch` and `target_layer` travel with it.
    """

    mean: torch.Tensor  # buffers, registered in __init__
    std: torch.Tensor

    def __init__(self, net: nn.Module, *, arch: str, classes: list[str], in_channels: int, image_size_px: int):
        super().__init__()
        self.net, self.arch, self.classes = net, arch, list(classes)
        self.in_channels, self.image_size_px = in_channels, image_size_px
        mean = torch.tensor(IMAGENET_MEAN if in_channels == 3 else (sum(IMAGENET_MEAN) / 3,))
        std = torch.tensor(IMAGENET_STD if in_channels == 3 else (sum(IMAGENET_STD) / 3,))
        self.register_buffer("mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, -1, 1, 1), persistent=False)

    @property
    def target_layer(self) -> nn.Module:
        return TARGET_LAYERS[self.arch](self.net)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        if x.shape[1] != self.in_channels:
            x = x.mean(dim=1, keepdim=True) if self.in_channels == 1 else x.expand(-1, self.in_channels, -1, -1)
        if x.shape[-2:] != (self.image_size_px, self.image_size_px):
            x = F.interpolate(x, size=(self.image_size_px, self.image_size_px), mode="bilinear", align_corners=False)
        if self.arch != "small_cnn":
            x = ((x + 1.0) / 2.0 - self.mean) / self.std
        return self.net(x)


def build_classifier(
    arch: str,
    *,
    num_classes: int,
    in_channels: int,
    weights_path: str | Path | None = None,
    small_cnn_width: int = 32,
    vgg_recipe: bool = True,
) -> nn.Module:
    """A classifier backbone for `num_classes` classes and 1 (grey) or 3 input channels.

    torchvision archs load ImageNet weights only from the local `weights_path` when given (never
    downloaded); grey input sums the first conv's RGB kernels. `small_cnn` trains from scratch; so does
    vgg19 without weights, built as VGG_SCRATCH (`built_arch`; `vgg_recipe=False` keeps plain VGG-19).
    """
    if arch not in BUILT_ARCHS:
        raise ValueError(f"Unknown classifier arch {arch!r}; choose one of {ARCHS}.")
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 (grey) or 3 (RGB), got {in_channels}.")
    if num_classes < 2:
        raise ValueError(f"A classifier needs at least 2 classes, got num_classes={num_classes}.")
    if arch == "small_cnn":
        if weights_path is not None:
            raise ValueError("small_cnn has no ImageNet weights; leave weights_path unset for it.")
        return SmallCNN(num_classes=num_classes, in_channels=in_channels, width=small_cnn_width)
    arch = built_arch(arch, has_weights=weights_path is not None, vgg_recipe=vgg_recipe)
    if arch == VGG_SCRATCH:
        if weights_path is not None:
            raise ValueError(f"{VGG_SCRATCH} trains from scratch; ImageNet weights are for arch vgg19.")
        net = _vgg19_bn_gap(num_classes)
        _adapt_first_conv(net, arch, in_channels)
        return net
    net = _torchvision_net(arch)
    if weights_path is not None:
        state = _load_state_dict(Path(weights_path), arch)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            detail = str(exc) if len(str(exc)) < 400 else str(exc)[:400] + "..."
            raise ValueError(
                f"{weights_path} does not hold torchvision {arch} ImageNet weights "
                f"(expected the file {imagenet_weights_filename(arch)}): {detail}"
            ) from exc
        log.info("Loaded ImageNet weights for %s from %s", arch, weights_path)
    _adapt_first_conv(net, arch, in_channels)
    _replace_head(net, arch, num_classes)
    return net


def augment_batch(images: torch.Tensor, *, shift_px: int, hflip: bool, generator: torch.Generator) -> torch.Tensor:
    """Seeded random translation (reflect-padded, up to `shift_px`) and optional horizontal flips."""
    if shift_px > 0:
        n, _, h, w = images.shape
        padded = F.pad(images, (shift_px,) * 4, mode="reflect")
        dx = torch.randint(0, 2 * shift_px + 1, (n,), generator=generator)
        dy = torch.randint(0, 2 * shift_px + 1, (n,), generator=generator)
        images = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    if hflip:
        flip = torch.rand(images.shape[0], generator=generator) < 0.5
        images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
    return images


@torch.no_grad()
def predict_proba(model: nn.Module, pixels: np.ndarray, *, batch_size: int = 128) -> np.ndarray:
    """Class probabilities [N, K] for uint8 images [N, C, H, W] (model in eval mode, restored after)."""
    was_training = model.training
    model.eval()
    outputs, device = [], next(model.parameters()).device
    for start in range(0, len(pixels), batch_size):
        batch = to_model_range(torch.from_numpy(np.ascontiguousarray(pixels[start : start + batch_size])))
        outputs.append(torch.softmax(model(batch.to(device)).float(), dim=1).cpu())
    model.train(was_training)
    return torch.cat(outputs).numpy()
