"""The `synthmed` command line: one subcommand module per pipeline stage, registered here.

Each module in this package exposes `register(subparsers)` that adds its subcommand(s) and sets
`func=run` on them. Modules import heavy libraries (torch, diffusers, ...) inside `run`, so
`synthmed --help` stays fast. Nothing imports this package.

Errors are handled here and only here (`main`): an input or environment problem (see
`user_error_message`) becomes one line on stderr and exit code 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys

from synthmed import __version__
from synthmed.cli import (
    demo,
    env,
    evaluate,
    finetune,
    latent,
    prepare,
    prompt,
    report,
    run,
    sample,
    study,
    train,
)

SUBCOMMAND_MODULES = (prepare, train, sample, evaluate, report, study, prompt, finetune, latent, demo, run, env)

EXIT_USER_ERROR = 2

# Exception classes (by name, so nothing heavy is imported here) raised by the libraries synthmed reads
# files with, and the fix to print after their message. Library code raises ValueError / OSError
# subclasses with a message that names the file and the fix; these are the ones that come from below.
THIRD_PARTY_FIXES = {
    "ValidationError": "",  # pydantic: formatted by `_validation_message`
    "SafetensorError": "the weights file is damaged or incomplete: re-create it with the command that wrote it",
    "UnpicklingError": "the file is not a PyTorch weights file or it is damaged: fetch or write it again",
    "UnidentifiedImageError": "the file is not a readable image: replace or remove it",
    "InvalidDicomError": "the file is not a readable DICOM file: replace or remove it",
    "ImageFileError": "the file is not a readable NIfTI image: replace or remove it",
    "BadZipFile": "the archive is damaged or incomplete: fetch or write it again",
    "EmptyDataError": "",
    "ParserError": "",
    "JSONDecodeError": "the JSON file is damaged: re-create it with the command that wrote it",
    "ProviderError": "",
    "EOFError": "the file ends early (truncated): fetch or write it again",
    "DatabaseError": "the database file is damaged or not a study database: restore it from a copy",
}


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's '(default: X)' after an option's help, unless the help already says its default or X is None."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default is None or "default" in text.lower():
            return text
        return super()._get_help_string(action)


def _one_default_note(parser: argparse.ArgumentParser) -> None:
    """Give every parser that adds defaults to its help (ArgumentDefaultsHelpFormatter) DefaultsHelpFormatter."""
    if parser.formatter_class is argparse.ArgumentDefaultsHelpFormatter:
        parser.formatter_class = DefaultsHelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                _one_default_note(sub)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (all subcommands)."""
    parser = argparse.ArgumentParser(
        prog="synthmed",
        description="Synthetic medical images with diffusion models, and the evidence of whether they are any good.",
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"synthmed {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in SUBCOMMAND_MODULES:
        module.register(subparsers)
    _one_default_note(parser)
    return parser


def _class_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _validation_message(exc: BaseException) -> str:
    """A pydantic ValidationError as one line: `field: message; field: message`."""
    parts = []
    for error in exc.errors():  # type: ignore[attr-defined]
        where = ".".join(str(x) for x in error.get("loc", ())) or "value"
        parts.append(f"{where}: {str(error.get('msg', '')).removeprefix('Value error, ')}")
    return f"invalid settings ({exc.title}): " + "; ".join(parts)  # type: ignore[attr-defined]


def user_error_message(exc: BaseException) -> str | None:
    """One line saying what is wrong and how to fix it, or None when `exc` is a bug (not a user error).

    User errors: ValueError (bad values, damaged files, pydantic validation), OSError (missing,
    existing, unreadable or unwritable files; undecodable images), the file-format errors of the
    libraries in THIRD_PARTY_FIXES, and a missing optional package (ModuleNotFoundError, or an
    ImportError whose message says what to `pip install`).
    """
    names = _class_names(exc)
    if "ValidationError" in names and hasattr(exc, "errors"):
        text = _validation_message(exc)
    elif (
        isinstance(exc, (ValueError, OSError, EOFError, ModuleNotFoundError))
        or names & set(THIRD_PARTY_FIXES)
        or (isinstance(exc, ImportError) and "pip install" in str(exc))
    ):
        text = str(exc) or type(exc).__name__
        if names & set(THIRD_PARTY_FIXES) - {"ValidationError"} and type(exc).__name__ not in text:
            text = f"{type(exc).__name__}: {text}"
        fix = next((THIRD_PARTY_FIXES[c.__name__] for c in type(exc).__mro__ if THIRD_PARTY_FIXES.get(c.__name__)), "")
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
            text = f"{exc.filename}: {text}"
        if isinstance(exc, (PermissionError, NotADirectoryError, IsADirectoryError)):
            fix = "check that path and its permissions, or choose another --out folder"
        if isinstance(exc, ModuleNotFoundError) and not fix:
            fix = f"install the pipeline's packages: pip install 'synthmed[all]' (this one: {exc.name})"
        if fix and fix not in text:
            text = f"{text} ({fix})"
    else:
        return None
    return " ".join(text.split())  # one line


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen subcommand; returns the process exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print(f"synthmed {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place errors become messages
        message = user_error_message(exc)
        if message is None or args.debug:
            raise
        print(f"synthmed {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
