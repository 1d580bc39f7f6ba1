"""Load benchmark of the reader-study server: N concurrent readers answering M cases each on loopback.

Runs `synthmed study serve` on 127.0.0.1 (a free port), first with ONE reader (the baseline, same run),
then with `--readers` readers at once. Every reader accepts an invitation, then for each case loads
the page, fetches the image and posts an answer: bounded loops that stop by themselves. Afterwards the
database is checked answer by answer: every answer a reader sent is stored, none twice. The server is
pinned to one core and this client to another where the machine has two or more (sched_setaffinity, as
taskset does); the load average before and after is recorded, since a shared machine skews latencies.
Target: p95 under 50 ms for pages and images at 20 readers. Figures go to bench/results/study_load.json.

    .venv/bin/python bench/study_load.py                     # 20 readers x 50 cases, SQLite and PostgreSQL
    .venv/bin/python bench/study_load.py --databases sqlite  # SQLite (WAL) only
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from study.browser import serve  # noqa: E402  (test helper: starts `synthmed study serve`)
from study.pg import create_database, postgres_missing, postgres_server  # noqa: E402
from synthmed.study.blinding import StudySpec, build_study  # noqa: E402
from synthmed.study.db import Answer, Assignment, Case, Reader, make_engine, make_sessionmaker  # noqa: E402
from synthmed.study.settings import StudySettings  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from result_file import table, write_result  # noqa: E402

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
IMAGE = re.compile(r'src="(/image/[^"]+)"')
PASSWORD = "benchmark-password"


def make_sources(root: Path, *, per_class: int, size_px: int, seed: int = 0) -> tuple[Path, Path]:
    """Smooth random 'real' and 'synthetic' images in two classes (content does not matter here)."""
    rng = np.random.default_rng(seed)
    for side in ("real", "synthetic"):
        for label in ("normal", "effusion"):
            folder = root / side / label
            folder.mkdir(parents=True)
            for k in range(per_class):
                field = rng.normal(0, 1, (size_px // 8, size_px // 8))
                img = Image.fromarray(((field - field.min()) / np.ptp(field) * 255).astype(np.uint8))
                img.resize((size_px, size_px), Image.Resampling.BICUBIC).save(folder / f"{k}.png")
    return root / "real", root / "synthetic"


def read_study(base: str, token: str, *, cases: int, seed: int, stop: threading.Event) -> dict:
    """One reader's session; returns latencies (s) per request kind and the answers it sent."""
    rng = np.random.default_rng(seed)
    latencies: dict[str, list[float]] = {"page": [], "image": [], "answer": []}
    sent: dict[int, tuple[str, int]] = {}
    with httpx.Client(base_url=base, timeout=60.0, follow_redirects=False) as client:
        page = client.get(f"/invite/{token}")
        client.post(
            f"/invite/{token}",
            data={"csrf_token": CSRF.search(page.text)[1], "password": PASSWORD, "confirm": PASSWORD},
        )
        for position in range(1, cases + 1):  # bounded: one pass over the reader's cases
            if stop.is_set():
                break
            start = time.perf_counter()
            page = client.get(f"/reader/case/{position}")
            latencies["page"].append(time.perf_counter() - start)
            page.raise_for_status()
            start = time.perf_counter()
            image = client.get(IMAGE.search(page.text)[1])
            latencies["image"].append(time.perf_counter() - start)
            image.raise_for_status()
            call, confidence = str(rng.choice(["real", "fake", "unsure"])), int(rng.integers(1, 6))
            start = time.perf_counter()
            response = client.post(
                f"/reader/case/{position}",
                data={
                    "csrf_token": CSRF.search(page.text)[1],
                    "call": call,
                    "confidence": str(confidence),
                    "findings": f"reader note {position}",
                },
            )
            latencies["answer"].append(time.perf_counter() - start)
            if response.status_code != 303:
                raise RuntimeError(f"answer {position} got HTTP {response.status_code}")
            sent[position] = (call, confidence)
    return {"latencies": latencies, "sent": sent}


def run_round(base: str, invitations: dict[str, str], *, cases: int) -> tuple[list[dict], float]:
    """All readers in `invitations` at once; returns their results and the wall time."""
    results: dict[str, dict] = {}
    errors: list[BaseException] = []
    stop = threading.Event()

    def work(name: str, token: str, seed: int) -> None:
        try:
            results[name] = read_study(base, token, cases=cases, seed=seed, stop=stop)
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=work, args=(n, t, i)) for i, (n, t) in enumerate(invitations.items())]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    wall = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} reader(s) failed: {errors[0]!r}")
    return [results[n] | {"name": n} for n in invitations], wall


def verify(settings: StudySettings, results: list[dict]) -> dict:
    """Compare every answer the readers sent with the database: lost, duplicated, wrong."""
    engine = make_engine(settings.resolved_database_url())
    with make_sessionmaker(engine)() as session:
        stored = {}
        for name, position, call, confidence in session.execute(
            select(Reader.name, Assignment.position, Answer.call, Answer.confidence)
            .join(Answer, Answer.reader_id == Reader.id)
            .join(Assignment, (Assignment.reader_id == Reader.id) & (Assignment.case_id == Answer.case_id))
        ):
            stored.setdefault((name, position), []).append((call, confidence))
        n_cases = len(session.scalars(select(Case.id)).all())
    engine.dispose()
    sent = {(r["name"], p): v for r in results for p, v in r["sent"].items()}
    return {
        "sent": len(sent),
        "stored": sum(len(v) for v in stored.values()),
        "lost": sum((k not in stored) for k in sent),
        "duplicated": sum(len(v) > 1 for v in stored.values()),
        "wrong": sum(k in stored and stored[k][0] != v for k, v in sent.items()),
        "cases": n_cases,
    }


def summarize(results: list[dict], wall_s: float) -> dict:
    """p50/p95/max latency (ms) per request kind, requests per second."""
    out = {}
    for kind in ("page", "image", "answer"):
        values = np.array([x for r in results for x in r["latencies"][kind]]) * 1000
        out[kind] = {
            "n": int(values.size),
            "p50_ms": round(float(np.percentile(values, 50)), 1),
            "p95_ms": round(float(np.percentile(values, 95)), 1),
            "max_ms": round(float(values.max()), 1),
        }
    total = sum(v["n"] for v in out.values())
    out["requests_per_s"] = round(total / wall_s, 1)
    out["wall_s"] = round(wall_s, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=20)
    parser.add_argument("--cases", type=int, default=50)
    parser.add_argument("--size-px", type=int, default=256)
    parser.add_argument("--databases", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"])
    parser.add_argument("--no-result-file", action="store_true", help="print only; do not write study_load.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus, client_cpus = ({cpus[0]}, set(cpus[1:])) if len(cpus) >= 2 else (None, None)
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    runs, ok = {}, True
    for database in args.databases:
        if database == "postgres":
            reason = postgres_missing()
            if reason:
                print(f"postgres skipped: {reason}")
                continue
            with postgres_server() as server:
                runs[database], good = bench(args, database_url=create_database(server), server_cpus=server_cpus)
        else:
            runs[database], good = bench(args, database_url=None, server_cpus=server_cpus)
        ok = ok and good
    if client_cpus:
        os.sched_setaffinity(0, set(cpus))  # the result file names the whole machine, not the client's core
    if not args.no_result_file and runs:
        write(args, runs, pinned=server_cpus is not None)
    return 0 if ok else 1


def write(args: argparse.Namespace, runs: dict[str, dict], *, pinned: bool) -> None:
    """bench/results/study_load.json in the one result format."""
    rows = []
    for database, figures in runs.items():
        for label, block in (
            ("1 reader", figures["baseline_1_reader"]),
            (f"{args.readers} readers", figures[f"concurrent_{args.readers}_readers"]),
        ):
            for kind in ("page", "image", "answer"):
                b = block[kind]
                rows.append(
                    [database, label, kind, b["n"], b["p50_ms"], b["p95_ms"], b["max_ms"], block["requests_per_s"]]
                )
    loads = "; ".join(
        f"{db}: load average {f['load_average_before']} before, {f['load_average_after']} after"
        for db, f in runs.items()
    )
    integrity = "; ".join(
        f"{db}: sent {f['integrity']['sent']}, stored {f['integrity']['stored']}, lost "
        f"{f['integrity']['lost']}, duplicated {f['integrity']['duplicated']}"
        for db, f in runs.items()
    )
    loaded = f"concurrent_{args.readers}_readers"
    target = all(f[loaded][k]["p95_ms"] < 50 for f in runs.values() for k in ("page", "image"))
    pinning = "pinned to one core, client to the others" if pinned else "not pinned (one core)"
    write_result(
        "study_load",
        title="Reader study under load",
        command=f"python bench/study_load.py --readers {args.readers} --cases {args.cases} "
        f"--databases {' '.join(runs)}",
        sections=[
            {
                "heading": f"Latency per request, {args.readers} concurrent readers x {args.cases} cases",
                "text": f"Target: p95 < 50 ms for pages and images at {args.readers} readers: "
                f"{'met' if target else 'NOT met'}. Server {pinning}. {loads} "
                "(shared machine: other jobs ran alongside).",
                "table": table(["database", "load", "request", "n", "p50 ms", "p95 ms", "max ms", "requests/s"], rows),
            },
            {"heading": "Integrity", "text": integrity},
        ],
        notes="Loopback, uvicorn single worker; images are pre-encoded uncompressed PNGs read from disk.",
    )


def bench(args: argparse.Namespace, *, database_url: str | None, server_cpus: set[int] | None) -> tuple[dict, bool]:
    """Build the study, run the baseline and the loaded round, verify and print the figures."""
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="synthmed-load-") as tmp:
        root = Path(tmp)
        real, synthetic = make_sources(root / "src", per_class=args.cases // 2 + 1, size_px=args.size_px)
        names = ["baseline"] + [f"reader{i:02d}" for i in range(args.readers)]
        created = build_study(
            StudySpec(cases=args.cases, readers=names, seed=0, allow_unblinded=True),
            real_dir=real,
            synthetic_dir=synthetic,
            study_dir=root / "study",
            database_url=database_url,
        )
        settings = StudySettings(study_dir=created.study_dir, database_url=database_url)
        with serve(created.study_dir, log_path=root / "serve.log", database_url=database_url, cpus=server_cpus) as base:
            baseline, baseline_wall = run_round(base, {"baseline": created.invitations["baseline"]}, cases=args.cases)
            loaded, loaded_wall = run_round(base, {n: created.invitations[n] for n in names[1:]}, cases=args.cases)
        check = verify(settings, baseline + loaded)
    figures = {
        "readers": args.readers,
        "cases": args.cases,
        "image_size_px": args.size_px,
        "database": "postgresql" if database_url else "sqlite (WAL)",
        "baseline_1_reader": summarize(baseline, baseline_wall),
        f"concurrent_{args.readers}_readers": summarize(loaded, loaded_wall),
        "integrity": check,
        "load_average_before": load_before,
        "load_average_after": round(os.getloadavg()[0], 2),
    }
    one, many = figures["baseline_1_reader"], figures[f"concurrent_{args.readers}_readers"]
    print(json.dumps(figures, indent=2))
    print("\n| load | request | n | p50 ms | p95 ms | max ms |\n|---|---|---|---|---|---|")
    for label, block in (("1 reader (baseline)", one), (f"{args.readers} readers", many)):
        for kind in ("page", "image", "answer"):
            b = block[kind]
            print(f"| {label} | {kind} | {b['n']} | {b['p50_ms']} | {b['p95_ms']} | {b['max_ms']} |")
    print(
        f"\nanswers sent {check['sent']}, stored {check['stored']}, lost {check['lost']}, "
        f"duplicated {check['duplicated']}, wrong {check['wrong']}"
    )
    good = check["lost"] == check["duplicated"] == check["wrong"] == 0 and check["sent"] == check["stored"]
    return figures, good


if __name__ == "__main__":
    sys.exit(main())
