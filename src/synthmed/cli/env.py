"""`synthmed env`: print the versions of synthmed and its key libraries, for bug reports."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform

PACKAGES = (
    "torch",
    "torchvision",
    "diffusers",
    "accelerate",
    "safetensors",
    "pydicom",
    "nibabel",
    "transformers",
    "peft",
    "torchmetrics",
    "scikit-learn",
    "statsmodels",
    "fastapi",
    "sqlalchemy",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `env` subcommand."""
    parser = subparsers.add_parser("env", help="print library versions and the compute device, for bug reports")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(f"python: {platform.python_version()} ({platform.machine()})")
    for name in ("synthmed",) + PACKAGES:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        print(f"{name}: {version}")
    try:
        import torch
    except ModuleNotFoundError:  # a study-only install (`synthmed[study]`) has no torch
        print("torch: not installed (the pipeline needs `pip install 'synthmed[all]'`)")
        return 0
    print(f"cuda available: {torch.cuda.is_available()}; cpu threads: {torch.get_num_threads()}")
    return 0
