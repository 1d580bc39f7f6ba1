"""--device choices resolve to a torch.device, and a GPU asked for but absent is a clear error."""

import pytest
import torch

from synthmed.models.device import resolve_device


def test_auto_and_cpu():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_names_the_fix():
    for choice in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match="--device cpu"):
            resolve_device(choice)
