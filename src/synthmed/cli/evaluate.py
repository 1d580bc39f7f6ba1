"""`synthmed evaluate`: fidelity, diversity, memorisation, usefulness, condition fidelity and explanations."""

from __future__ import annotations

import argparse
from pathlib import Path

PARTS_HELP = "fidelity,diversity,memorisation,usefulness(tstr),condition_fidelity(condition),explanations(explain)"


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `evaluate` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="measure how good, varied, private and useful synthetic images are",
        description="Compare a synthetic image set with a prepared real dataset and write EVAL_DIR/metrics.json "
        "plus figures (render them with `synthmed report EVAL_DIR`).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--real",
        required=True,
        type=Path,
        metavar="PREPARED_DATASET",
        help="prepared dataset (synthmed prepare) with train and test splits",
    )
    parser.add_argument(
        "--synthetic",
        required=True,
        type=Path,
        metavar="SYNTH_SET",
        help="folder with manifest.csv (image_id, path, label), e.g. from synthmed sample",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="EVAL_DIR", help="output folder")
    parser.add_argument(
        "--extractor",
        choices=("domain", "inception", "xrv"),
        default="domain",
        help="features for fidelity and memorisation: domain = small CNN trained here on the real "
        "train split (offline); inception / xrv need a local weights file",
    )
    parser.add_argument("--weights", type=Path, metavar="PATH", help="weights file for --extractor inception|xrv")
    parser.add_argument(
        "--cache-dir", type=Path, help="weights and domain-encoder cache (default $SYNTHMED_CACHE or ~/.cache/synthmed)"
    )
    parser.add_argument("--size-px", type=int, help="evaluation image size (default: the dataset's)")
    parser.add_argument("--max-real", type=int, help="seeded random cap on real train and held-out images")
    parser.add_argument("--max-synthetic", type=int, help="seeded random cap on synthetic images")
    parser.add_argument(
        "--tstr-archs",
        type=_csv,
        default=["small_cnn"],
        help="usefulness classifiers: small_cnn,resnet50,densenet121,vgg19",
    )
    parser.add_argument(
        "--tstr-seeds",
        type=lambda v: [int(x) for x in _csv(v)],
        default=[0, 1, 2],
        help="comma-separated seeds; each arch x training set is fitted once per seed",
    )
    parser.add_argument("--tstr-epochs", type=int, default=20, help="epochs per usefulness classifier")
    parser.add_argument("--tstr-max-train", type=int, help="seeded random cap on each usefulness training set")
    parser.add_argument("--tstr-weights-dir", type=Path, help="folder with torchvision ImageNet .pth files")
    parser.add_argument("--skip", type=_csv, default=[], help=f"parts to skip, comma-separated: {PARTS_HELP}")
    parser.add_argument("--bootstrap", type=int, default=50, help="bootstrap resamples for confidence intervals")
    parser.add_argument("--encoder-epochs", type=int, default=4, help="domain encoder training epochs")
    parser.add_argument("--explain-images", type=int, default=8, help="images per set for Grad-CAM / LIME")
    parser.add_argument("--lime-samples", type=int, default=300, help="LIME perturbations per image")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of subsampling, bootstrap, encoder training and explanations"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the EvalConfig from the flags, run the evaluation and print where metrics.json is."""
    from pydantic import ValidationError

    from synthmed.evaluate.run import EvalConfig, evaluate

    try:
        config = EvalConfig(
            real_dir=args.real,
            synthetic_dir=args.synthetic,
            out_dir=args.out,
            extractor=args.extractor,
            weights_path=args.weights,
            cache_dir=args.cache_dir,
            size_px=args.size_px,
            max_real=args.max_real,
            max_synthetic=args.max_synthetic,
            tstr_archs=tuple(args.tstr_archs),
            tstr_seeds=tuple(args.tstr_seeds),
            tstr_epochs=args.tstr_epochs,
            tstr_max_train_images=args.tstr_max_train,
            tstr_weights_dir=args.tstr_weights_dir,
            skip=tuple(args.skip),
            bootstrap_samples=args.bootstrap,
            encoder_epochs=args.encoder_epochs,
            explain_images=args.explain_images,
            lime_samples=args.lime_samples,
            seed=args.seed,
        )
    except ValidationError as exc:
        raise ValueError(
            f"invalid options: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']} (see `synthmed evaluate --help`)"
        ) from exc
    if config.tstr_weights_dir is not None:  # refuse missing or damaged weights before anything is written
        from synthmed.evaluate.classifiers import check_weights_dir

        check_weights_dir(config.tstr_weights_dir, config.tstr_archs)
    path = evaluate(config)
    import json

    metrics = json.loads(path.read_text())
    print(f"wrote {path}")
    for part in ("fidelity", "diversity", "memorisation", "usefulness", "condition_fidelity", "explanations"):
        section = metrics.get(part, {})
        print(f"  {part}: {section.get('verdict') or section.get('status') or ''}")
    failed = metrics.get("status", {}).get("failed_parts", [])
    return 1 if failed else 0
