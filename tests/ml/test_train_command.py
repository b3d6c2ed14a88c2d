"""`python -m ml.train --help` says every default, so nobody has to read the code to know what a run will do."""

from __future__ import annotations

import argparse

from ml import train as train_command


def test_the_help_shows_every_default() -> None:
    parser = train_command._parser()
    text = " ".join(parser.format_help().split())
    with_defaults = [
        action
        for action in parser._actions
        if action.default not in (None, False, argparse.SUPPRESS) and not isinstance(action, argparse._HelpAction)
    ]
    assert {action.dest for action in with_defaults} >= {"seed", "test_fraction", "output"}
    for action in with_defaults:
        assert f"(default: {action.default})" in text, action.dest
