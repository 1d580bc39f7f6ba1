"""`synthmed prepare`: a folder / DICOM / NIfTI / MedMNIST .npz (or the built-in phantom) into a prepared dataset."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `prepare` subcommand."""
    parser = subparsers.add_parser(
        "prepare",
        help="prepare a dataset (images/, manifest.csv, dataset card) from your images or the phantom",
        description="Prepare SOURCE into --out: square 8-bit PNGs, manifest.csv, dataset.json, card.md/card.json, "
        "errors.csv. SOURCE is a folder (CLASS/file, {train,test}/CLASS/file, all/CLASS/file or flat), "
        "a DICOM or NIfTI file, a MedMNIST .npz, or the word 'phantom' (the built-in chest phantom).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("source", help="folder, file, .npz, or 'phantom'")
    parser.add_argument("--out", required=True, help="output folder (must be empty unless --overwrite)")
    parser.add_argument("--size", type=int, default=64, help="square image size in pixels")
    parser.add_argument(
        "--channels",
        choices=["1", "3", "auto"],
        default="auto",
        help="1 = grey, 3 = RGB, auto = grey unless most images carry colour",
    )
    parser.add_argument(
        "--fit",
        choices=["pad", "crop"],
        default="pad",
        help="keep aspect ratio by padding with black (nothing cut) or by centre crop",
    )
    parser.add_argument(
        "--scaling",
        choices=["minmax", "percentile"],
        default="minmax",
        help="16-bit/float images and unwindowed DICOM: per-image min-max or 0.5-99.5 percentiles",
    )
    parser.add_argument(
        "--window",
        default=None,
        help="CT/DICOM/NIfTI window: lung, mediastinum, brain, bone or WIDTH,LEVEL (e.g. 400,40)",
    )
    parser.add_argument(
        "--metadata",
        default=None,
        help="CSV with a 'file' column and any of patient_id,label,age_years,sex,view,caption",
    )
    parser.add_argument(
        "--patient-id-regex",
        default=None,
        help="regex on file names whose first group is the patient id, e.g. 'person(\\d+)_'",
    )
    parser.add_argument("--classes", default=None, help="comma-separated class names (order = label index)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of images for val when not given")
    parser.add_argument("--test-fraction", type=float, default=0.1, help="share of images for test when not given")
    parser.add_argument("--seed", type=int, default=0, help="seed of the patient split (and of the phantom)")
    parser.add_argument("--frames", choices=["middle", "all"], default="middle", help="multi-frame DICOM frames")
    parser.add_argument("--slice-step", type=int, default=1, help="NIfTI: keep every k-th axial slice")
    parser.add_argument("--keep-empty-slices", action="store_true", help="NIfTI: keep slices with no foreground")
    parser.add_argument(
        "--no-group-near-duplicates",
        action="store_true",
        help="let near-duplicate images fall into different carved splits (they are still reported)",
    )
    parser.add_argument("--workers", type=int, default=2, help="reader processes")
    parser.add_argument("--name", default=None, help="dataset name (default: the source's name)")
    parser.add_argument("--modality", default=None, help="e.g. 'chest x-ray' (default: guessed where possible)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    phantom = parser.add_argument_group("phantom (SOURCE = phantom)")
    phantom.add_argument("--n-per-class", type=int, default=200, help="phantom images per condition")
    phantom.add_argument(
        "--phantom-size",
        type=int,
        default=None,
        help="phantom render size before preparing (default: 2 x --size, 128 to 512)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Prepare the dataset and print a short summary (the card has the details)."""
    from pathlib import Path

    from synthmed.data.prepare import prepare_dataset, summarise

    config = _config(args)
    if args.source == "phantom" and not Path(args.source).exists():
        from synthmed.data.phantom import prepare_phantom

        out = prepare_phantom(
            args.out,
            n_per_class=args.n_per_class,
            size_px=args.size,
            seed=args.seed,
            render_size_px=args.phantom_size,
            config=config,
        )
    else:
        out = prepare_dataset(args.source, out_dir=args.out, config=config)
    print(summarise(out))
    return 0


def _config(args: argparse.Namespace):
    """The validated PrepareConfig for the parsed flags."""
    from pathlib import Path

    from synthmed.data.prepare import PrepareConfig

    return PrepareConfig(
        size_px=args.size,
        channels=args.channels,
        fit=args.fit,
        scaling=args.scaling,
        window=args.window,
        metadata_csv=Path(args.metadata) if args.metadata else None,
        patient_id_regex=args.patient_id_regex,
        classes=[c.strip() for c in args.classes.split(",")] if args.classes else None,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        seed=args.seed,
        frames=args.frames,
        slice_step=args.slice_step,
        skip_empty_slices=not args.keep_empty_slices,
        workers=args.workers,
        name=args.name,
        modality=args.modality,
        overwrite=args.overwrite,
        group_near_duplicates=not args.no_group_near_duplicates,
    )
