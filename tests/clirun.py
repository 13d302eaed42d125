"""Run the ``guard`` command in-process (click's runner), as the CLI tests do."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from click.testing import CliRunner

from guard.cli import main


def run(args: list[str], env: Mapping[str, str]) -> Any:
    """The command's result; exceptions propagate (a crash is a test failure, not output)."""
    return CliRunner().invoke(main, args, env=dict(env), catch_exceptions=False)
