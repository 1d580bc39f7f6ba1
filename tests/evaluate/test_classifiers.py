"""Classifier builders: torchvision archs on grey input, local ImageNet weights, the small CNN."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from synthmed.cli import main
from synthmed.evaluate.classifiers import (
    VGG_SCRATCH,
    ImageClassifier,
    augment_batch,
    build_classifier,
    built_arch,
    check_weights_dir,
    imagenet_weights_filename,
    predict_proba,
)


@pytest.mark.parametrize("arch", ["small_cnn", "resnet50", "densenet121", "vgg19"])
def test_each_arch_builds_and_runs_on_32px_grey(arch: str) -> None:
    net = build_classifier(arch, num_classes=3, in_channels=1)
    model = ImageClassifier(net, arch=arch, classes=["a", "b", "c"], in_channels=1, image_size_px=32).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 1, 32, 32) * 2 - 1)
    assert logits.shape == (2, 3)
    assert torch.isfinite(logits).all()
    assert isinstance(model.target_layer, torch.nn.Module)


def test_rgb_input_and_other_sizes_are_adapted_by_the_wrapper() -> None:
    net = build_classifier("small_cnn", num_classes=2, in_channels=1, small_cnn_width=8)
    model = ImageClassifier(net, arch="small_cnn", classes=["a", "b"], in_channels=1, image_size_px=16).eval()
    with torch.no_grad():
        assert model(torch.zeros(3, 3, 40, 40)).shape == (3, 2)


def test_local_weights_file_loads_and_grey_conv_sums_rgb_kernels(tmp_path: Path) -> None:
    from torchvision.models import resnet50

    reference = resnet50(weights=None).state_dict()
    path = tmp_path / imagenet_weights_filename("resnet50")
    torch.save(reference, path)
    net = build_classifier("resnet50", num_classes=2, in_channels=1, weights_path=path)
    assert net.conv1.weight.shape == (64, 1, 7, 7)
    torch.testing.assert_close(net.conv1.weight, reference["conv1.weight"].sum(dim=1, keepdim=True))
    torch.testing.assert_close(net.layer1[0].conv1.weight, reference["layer1.0.conv1.weight"])
    assert net.fc.out_features == 2


def test_missing_weights_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "densenet121-a639ec97.pth"
    with pytest.raises(FileNotFoundError) as excinfo:
        build_classifier("densenet121", num_classes=2, in_channels=1, weights_path=missing)
    message = str(excinfo.value)
    assert str(missing) in message and "https://download.pytorch.org/models/densenet121" in message
    assert "never downloads" in message


def test_wrong_weights_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "resnet50.pth"
    torch.save({"not": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="resnet50-0676ba61.pth"):
        build_classifier("resnet50", num_classes=2, in_channels=3, weights_path=path)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        build_classifier("alexnet", num_classes=2, in_channels=1)
    with pytest.raises(ValueError, match="in_channels"):
        build_classifier("small_cnn", num_classes=2, in_channels=4)
    with pytest.raises(ValueError, match="at least 2 classes"):
        build_classifier("small_cnn", num_classes=1, in_channels=1)
    with pytest.raises(ValueError, match="no ImageNet weights"):
        build_classifier("small_cnn", num_classes=2, in_channels=1, weights_path="x.pth")


def test_augmentation_is_seeded_and_keeps_shape() -> None:
    images = torch.rand(4, 1, 16, 16)
    first = augment_batch(images, shift_px=2, hflip=True, generator=torch.Generator().manual_seed(3))
    second = augment_batch(images, shift_px=2, hflip=True, generator=torch.Generator().manual_seed(3))
    assert first.shape == images.shape
    torch.testing.assert_close(first, second)
    assert not torch.equal(first, images)


def test_predict_proba_rows_sum_to_one_and_restore_training_mode() -> None:
    net = build_classifier("small_cnn", num_classes=3, in_channels=1, small_cnn_width=8)
    model = ImageClassifier(net, arch="small_cnn", classes=["a", "b", "c"], in_channels=1, image_size_px=16)
    model.train()
    pixels = np.random.default_rng(0).integers(0, 256, (5, 1, 16, 16), dtype=np.uint8)
    proba = predict_proba(model, pixels, batch_size=2)
    assert proba.shape == (5, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert model.training


def test_old_style_densenet_checkpoint_keys_are_renamed(tmp_path: Path) -> None:
    """torchvision's densenet121-a639ec97.pth names layers 'norm.1'; the model calls them 'norm1'."""
    import re

    from torchvision.models import densenet121

    state = densenet121(weights=None).state_dict()
    old_style = {re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k): v for k, v in state.items()}
    assert "features.denseblock1.denselayer1.norm.1.weight" in old_style
    path = tmp_path / "densenet121-a639ec97.pth"
    torch.save(old_style, path)
    net = build_classifier("densenet121", num_classes=2, in_channels=3, weights_path=path)
    torch.testing.assert_close(
        net.features.denseblock1.denselayer1.conv2.weight, state["features.denseblock1.denselayer1.conv2.weight"]
    )


@pytest.mark.parametrize(
    ("arch", "channels", "width"), [("small_cnn", 3, 8), ("densenet121", 1, 32), (VGG_SCRATCH, 1, 32)]
)
def test_saved_classifier_reloads_to_the_same_outputs(tmp_path: Path, arch: str, channels: int, width: int) -> None:
    from synthmed.evaluate.tstr_outputs import load_classifier, save_classifier

    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = build_classifier(arch, num_classes=3, in_channels=channels, small_cnn_width=width)
        model = ImageClassifier(net, arch=arch, classes=["a", "b", "c"], in_channels=channels, image_size_px=32)
        model.train()
        model(torch.rand(4, channels, 32, 32))  # move the batch-norm running statistics off their initial values
    model.eval()
    paths = save_classifier(
        model, tmp_path / arch, condition="real+synthetic", seed=3, small_cnn_width=width, extra={"n_train_images": 4}
    )
    assert paths["weights"].name == "real_plus_synthetic-seed3.safetensors" and paths["weights"].is_file()
    config = json.loads(paths["config"].read_text())
    assert config | {"synthmed_version": None} == {
        "arch": arch,
        "classes": ["a", "b", "c"],
        "in_channels": channels,
        "image_size_px": 32,
        "small_cnn_width": width,
        "trained_on": "real+synthetic",
        "seed": 3,
        "synthmed_version": None,
        "n_train_images": 4,
    }
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    reloaded = load_classifier(paths["weights"])
    assert torch.rand(1) == expected_next  # rebuilding the net did not consume the global RNG
    pixels = np.random.default_rng(0).integers(0, 256, (3, channels, 32, 32), dtype=np.uint8)
    np.testing.assert_allclose(predict_proba(reloaded, pixels), predict_proba(model, pixels), rtol=1e-5, atol=1e-6)
    assert reloaded.classes == ["a", "b", "c"] and not reloaded.training


def test_vgg19_from_scratch_is_built_with_batch_norm_and_a_pooled_head() -> None:
    assert built_arch("vgg19", has_weights=False) == VGG_SCRATCH
    assert built_arch("vgg19", has_weights=True) == "vgg19"
    assert built_arch("vgg19", has_weights=False, vgg_recipe=False) == "vgg19"
    recipe = build_classifier("vgg19", num_classes=4, in_channels=1)
    plain = build_classifier("vgg19", num_classes=4, in_channels=1, vgg_recipe=False)
    norms = [m for m in recipe.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    convs = [m for m in recipe.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(norms) == len(convs) == 16 and convs[0].in_channels == 1
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    assert sum(p.numel() for p in recipe.parameters()) < sum(p.numel() for p in plain.parameters()) / 5
    # Kaiming-normal conv init (fan_out, ReLU): weight std close to sqrt(2 / fan_out).
    conv = convs[5]
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert abs(float(conv.weight.std()) / (2 / fan_out) ** 0.5 - 1) < 0.05
    with torch.no_grad():
        assert recipe.eval()(torch.rand(2, 1, 32, 32)).shape == (2, 4)


def test_empty_weights_folder_names_the_flag_the_files_and_where_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as excinfo:
        check_weights_dir(tmp_path, ["vgg19", "resnet50", "small_cnn"])
    message = str(excinfo.value)
    assert message.startswith("--tstr-weights-dir ")
    assert "vgg19-dcbb9e9d.pth" in message and "resnet50-0676ba61.pth" in message
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in message
    with pytest.raises(FileNotFoundError, match=r"^\[evaluate\] tstr_weights_dir .* lacks densenet121"):
        check_weights_dir(tmp_path, ["densenet121"], flag="[evaluate] tstr_weights_dir")
    check_weights_dir(tmp_path, ["small_cnn"])  # nothing to load: fine


def test_junk_or_other_weights_under_the_right_name_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / imagenet_weights_filename("vgg19")
    junk.write_bytes(b"junk")
    with pytest.raises(ValueError, match="damaged or not a PyTorch weights file.*--tstr-weights-dir"):
        check_weights_dir(tmp_path, ["vgg19"])
    torch.save({"features.0.weight": torch.zeros(2, 3, 3, 3)}, junk)  # loads, but is not VGG-19
    with pytest.raises(ValueError, match="does not hold torchvision vgg19 ImageNet weights"):
        check_weights_dir(tmp_path, ["vgg19"])


def test_correct_weights_folder_passes_the_check_and_other_values_do_not(tmp_path: Path, monkeypatch) -> None:
    import hashlib

    from torchvision.models import densenet121

    from synthmed.evaluate import classifiers

    stand_in = tmp_path / "stand_in.pth"  # plays torchvision's file: its name will carry its own hash prefix
    torch.save(densenet121(weights=None).state_dict(), stand_in)
    prefix = hashlib.sha256(stand_in.read_bytes()).hexdigest()[:8]
    monkeypatch.setattr(classifiers, "_weights_url", lambda arch: f"https://example.org/{arch}-{prefix}.pth")
    folder = tmp_path / "weights"
    folder.mkdir()
    stand_in.rename(folder / f"densenet121-{prefix}.pth")
    check_weights_dir(folder, ["densenet121", "small_cnn"])
    # The same layers with other values (a random init, another checkpoint) under that name are refused.
    torch.save(densenet121(weights=None).state_dict(), folder / f"densenet121-{prefix}.pth")
    with pytest.raises(
        ValueError, match=f"has densenet121's layers but not torchvision's ImageNet values.*says {prefix}"
    ):
        check_weights_dir(folder, ["densenet121"], flag="[evaluate] tstr_weights_dir")


def test_a_pickle_with_code_is_refused_unopened_without_advice_to_load_it_unsafely(tmp_path: Path, capsys) -> None:
    import pickle

    class Payload:
        def __reduce__(self):
            return (print, ("payload ran",))

    path = tmp_path / imagenet_weights_filename("resnet50")
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(ValueError) as excinfo:
        check_weights_dir(tmp_path, ["resnet50"])
    message = str(excinfo.value)
    assert "refused unopened" in message and "weights_only" not in message and len(message.splitlines()) == 1
    assert "payload ran" not in capsys.readouterr().out


def test_evaluate_cli_refuses_an_empty_weights_folder_in_one_line(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "weights"
    empty.mkdir()
    argv = ["evaluate", "--real", str(tmp_path / "r"), "--synthetic", str(tmp_path / "s"), "--out", str(tmp_path / "o")]
    assert main([*argv, "--tstr-archs", "vgg19", "--tstr-weights-dir", str(empty)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--tstr-weights-dir" in err and "vgg19-dcbb9e9d.pth" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
