"""Every option's help says its default at most once (hand-written or argparse's), and never 'default: None'."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from synthmed.cli import build_parser


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _parsers(sub)


def test_no_option_help_states_its_default_twice() -> None:
    parsers = list(_parsers(build_parser()))
    assert {"synthmed latent sample", "synthmed demo", "synthmed finetune", "synthmed run"} <= {p.prog for p in parsers}
    problems = []
    for parser in parsers:
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.help or action.help == argparse.SUPPRESS:
                continue
            text = formatter._expand_help(action)  # the help as --help prints it (one option)
            if text.count("(default") > 1 or "(default: None)" in text:
                problems.append(f"{parser.prog} {'/'.join(action.option_strings) or action.dest}: {text}")
    assert not problems, "\n".join(problems)


def test_preset_choices_are_the_presets_the_models_define() -> None:
    from synthmed.latent.model import UNET_PRESETS

    latent_train = next(p for p in _parsers(build_parser()) if p.prog == "synthmed latent train")
    preset = next(a for a in latent_train._actions if "--preset" in a.option_strings)
    assert preset.choices is not None and set(preset.choices) == set(UNET_PRESETS)
