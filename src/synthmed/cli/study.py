"""`synthmed study`: create, serve, extend, close, analyze and plan a blinded reader study ("Spot the fake")."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pydantic


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `study` subcommand and its actions."""
    parser = subparsers.add_parser(
        "study",
        help="blinded reader study: real vs synthetic images",
        description="A web app where readers label real and synthetic images, and "
        "its statistics: create (with a blinding audit), serve, add-reader, "
        "close, analyze (ROC AUC with readers and cases random, equivalence "
        "verdict), plan (readers and cases for a margin).",
    )
    actions = parser.add_subparsers(dest="study_command", metavar="ACTION", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter

    create = actions.add_parser("create", help="build a new study folder", formatter_class=fmt)
    create.add_argument("--real", type=Path, help="real images: folder (ImageFolder) or one with manifest.csv")
    create.add_argument("--synthetic", type=Path, required=True, help="synthetic images: folder or manifest")
    create.add_argument("--out", type=Path, required=True, help="new study folder")
    create.add_argument("--cases", type=int, required=True, help="images per reader")
    create.add_argument("--synthetic-fraction", type=float, default=0.5)
    create.add_argument("--reader", action="append", default=[], metavar="NAME", help="repeat for each reader")
    create.add_argument("--seed", type=int, default=0)
    create.add_argument("--all-synthetic", action="store_true", help="every case synthetic (as in the paper)")
    create.add_argument("--educational", action="store_true", help="show the truth after each answer")
    create.add_argument("--size-px", type=int, default=None, help="served image size (default: smallest side)")
    create.add_argument("--conditions", default="", help='comma-separated, e.g. "effusion,pneumonia"')
    create.add_argument("--modality", default=None, help="override the modality read from the image sets")
    create.add_argument("--name", default="Spot the fake", help="study title shown to readers")
    create.add_argument("--base-url", default="http://127.0.0.1:8000", help="for the printed invitation links")
    create.add_argument("--database-url", default=None, help="default sqlite:///OUT/study.db")
    create.add_argument(
        "--margin",
        type=float,
        default=0.1,
        help="equivalence margin around AUC 0.5 for the verdict (plan it with `study plan`)",
    )
    create.add_argument(
        "--match",
        action="store_true",
        help="resample both sides from one common size (served at most half of it) and stretch "
        "intensities the same way: the fix when the blinding audit fails",
    )
    create.add_argument(
        "--allow-unblinded",
        action="store_true",
        help="create the study even if the blinding audit fails (the results will say so)",
    )

    serve = actions.add_parser("serve", help="run the web app (uvicorn)", formatter_class=fmt)
    serve.add_argument("study_dir", type=Path)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--database-url", default=None)
    serve.add_argument("--https-only-cookies", action="store_true", help="set when serving behind HTTPS")
    serve.add_argument(
        "--trusted-proxy",
        default=None,
        metavar="ADDRESSES",
        help="comma-separated reverse-proxy addresses whose X-Forwarded-For is believed (for login "
        "throttling); without it the socket address counts and the header is ignored",
    )

    add = actions.add_parser("add-reader", help="add a reader and print a one-time invitation", formatter_class=fmt)
    add.add_argument("study_dir", type=Path)
    add.add_argument("name")
    add.add_argument("--base-url", default="http://127.0.0.1:8000")
    add.add_argument("--database-url", default=None)

    close = actions.add_parser("close", help="close the study (no more answers)", formatter_class=fmt)
    close.add_argument("study_dir", type=Path)
    close.add_argument("--database-url", default=None)

    analyze = actions.add_parser("analyze", help="statistics; JSON/CSV export", formatter_class=fmt)
    analyze.add_argument("study_dir", type=Path)
    analyze.add_argument("--json", type=Path, default=None, help="write the result dict here")
    analyze.add_argument("--csv", type=Path, default=None, help="write one row per answer (with truth) here")
    analyze.add_argument("--database-url", default=None)
    analyze.add_argument(
        "--exclude-reader",
        action="append",
        default=[],
        metavar="NAME",
        help="leave this reader out of every statistic (repeat for several)",
    )
    analyze.add_argument(
        "--margin", type=float, default=None, help="equivalence margin around AUC 0.5 (default: the one set at create)"
    )

    plan = actions.add_parser(
        "plan", formatter_class=fmt, help="readers and cases needed to show 'indistinguishable within margin'"
    )
    plan.add_argument("--margin", type=float, required=True, help="equivalence margin around AUC 0.5, e.g. 0.1")
    plan.add_argument("--power", type=float, default=0.8)
    plan.add_argument("--alpha", type=float, default=0.05, help="per one-sided test")
    plan.add_argument("--readers", type=int, nargs="+", default=None, help="reader counts to plan for")
    plan.add_argument(
        "--pilot",
        type=Path,
        default=None,
        metavar="STUDY_DIR",
        help="take the variance components from this finished study instead of the defaults",
    )
    plan.add_argument("--database-url", default=None, help="of the --pilot study")
    parser.set_defaults(func=run)


def _session(study_dir: Path, database_url: str | None):  # noqa: ANN202
    from synthmed.study.db import init_db, make_engine, make_sessionmaker
    from synthmed.study.settings import StudySettings

    settings = StudySettings(study_dir=study_dir, database_url=database_url)
    if not settings.images_dir.is_dir():
        raise FileNotFoundError(
            f"{study_dir} is not a study folder (no images/); make one with `synthmed study create`."
        )
    engine = make_engine(settings.resolved_database_url())
    init_db(engine)
    return make_sessionmaker(engine).begin()


def _create(args: argparse.Namespace) -> int:
    from synthmed.study.blinding import StudySpec, build_study

    spec = StudySpec(
        name=args.name,
        cases=args.cases,
        synthetic_fraction=args.synthetic_fraction,
        readers=args.reader,
        seed=args.seed,
        all_synthetic=args.all_synthetic,
        educational=args.educational,
        size_px=args.size_px,
        modality=args.modality,
        margin_auc=args.margin,
        match=args.match,
        allow_unblinded=args.allow_unblinded,
        conditions=[c for c in args.conditions.split(",") if c.strip()],
    )
    created = build_study(
        spec,
        real_dir=args.real,
        synthetic_dir=args.synthetic,
        study_dir=args.out,
        database_url=args.database_url,
        admin_password=os.environ.get("SYNTHMED_STUDY_ADMIN_PASSWORD"),
    )
    print(
        f"study: {created.study_dir} ({created.n_real} real + {created.n_synthetic} synthetic cases, "
        f"{created.image_size_px} px)"
    )
    if created.blinding_audit is not None:
        verdict = "OVERRIDDEN, failed" if created.blinding_audit.overridden else "passed"
        print(f"blinding audit {verdict}: {created.blinding_audit.summary}")
    print(f"admin: {args.base_url}/admin/login  user {created.admin_username}  password {created.admin_password}")
    for name, token in created.invitations.items():
        print(f"invite {name}: {args.base_url}/invite/{token}")
    print("These links and the password are shown once; the database keeps only their hashes.")
    print(f"serve: synthmed study serve {created.study_dir}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from synthmed.study.app import create_app
    from synthmed.study.settings import StudySettings

    overrides = {"trusted_proxies": args.trusted_proxy} if args.trusted_proxy else {}
    settings = StudySettings(
        study_dir=args.study_dir, database_url=args.database_url, https_only=args.https_only_cookies, **overrides
    )
    proxies = settings.trusted_proxies
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level="info",
        proxy_headers=proxies is not None,
        forwarded_allow_ips=proxies or "",
    )
    return 0


def _add_reader(args: argparse.Namespace) -> int:
    from synthmed.study import crud

    with _session(args.study_dir, args.database_url) as session:
        reader, token = crud.add_reader(session=session, name=args.name)
    print(f"invite {reader.name}: {args.base_url}/invite/{token}")
    return 0


def _close(args: argparse.Namespace) -> int:
    from synthmed.study import crud

    with _session(args.study_dir, args.database_url) as session:
        study = crud.close_study(session=session)
    print(f"study closed at {study.closed_utc:%Y-%m-%d %H:%M} UTC")
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from synthmed.files import atomic_write_json, atomic_write_text
    from synthmed.study.results import study_csv, study_results

    with _session(args.study_dir, args.database_url) as session:
        result = study_results(session=session, exclude=args.exclude_reader, margin_auc=args.margin)
        csv_text = study_csv(session=session)
    if not result["study"]["closed"]:
        print("note: the study is still open; these are interim results.")
    print(result["verdict"])
    for name, metrics in {**result["per_reader"], "pooled": result["pooled"]}.items():
        acc = metrics["accuracy"]
        print(
            f"  {name:<20} answers {metrics['answers']:>4}  accuracy "
            + (f"{acc['value']:.1%} [{acc['ci95_low']:.1%}, {acc['ci95_high']:.1%}]" if acc else "n/a")
        )
    if args.json:
        atomic_write_json(args.json, result)
        print(f"json: {args.json}")
    if args.csv:
        atomic_write_text(args.csv, csv_text)
        print(f"csv: {args.csv}")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from synthmed.study import planner

    try:
        inputs = planner.PlanInputs(margin_auc=args.margin, power=args.power, alpha=args.alpha)
    except pydantic.ValidationError as exc:
        raise ValueError(
            f"--margin must lie in (0, 0.5), --power and --alpha in (0, 1): {exc.errors()[0]['msg']}"
        ) from None
    if args.pilot is not None:
        from synthmed.study import crud
        from synthmed.study.discrimination import pilot_single_treatment

        with _session(args.pilot, args.database_url) as session:
            single, cases = pilot_single_treatment(crud.answer_rows(session=session), crud.case_rows(session=session))
        inputs = planner.PlanInputs.from_pilot(
            single, cases=cases, margin_auc=args.margin, power=args.power, alpha=args.alpha
        ).model_copy(update={"true_auc": 0.5})
    print(planner.describe(inputs, planner.plan(inputs, readers=args.readers)))
    return 0


ACTIONS = {
    "create": _create,
    "serve": _serve,
    "add-reader": _add_reader,
    "close": _close,
    "analyze": _analyze,
    "plan": _plan,
}


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen study action."""
    return ACTIONS[args.study_command](args)
