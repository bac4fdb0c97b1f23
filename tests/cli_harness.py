"""The one command-line harness: runs `vigil` in-process against a database URL and a
fake clock, and hands back the exit code, stdout and stderr."""

from __future__ import annotations

import io
import json
from typing import Any

from app.cli.main import main
from app.core.clock import FakeClock


class Run:
    def __init__(self, url: str, clock: FakeClock) -> None:
        self.url = url
        self.clock = clock

    def __call__(self, *argv: str, who: str = "ana") -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(["--db", self.url, "--as", who, *argv], clock=self.clock, out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    def ok(self, *argv: str, who: str = "ana") -> str:
        """Stdout of a command that must succeed."""
        code, out, err = self(*argv, who=who)
        assert code == 0, err
        return out

    def json(self, *argv: str, who: str = "ana") -> Any:
        return json.loads(self.ok(*argv, "--json", who=who))

    def summary(self, *argv: str, who: str = "ana") -> Any:
        """The last JSON line of a command that streams one line per item (`vigil intake`)."""
        return json.loads(self.ok(*argv, "--json", who=who).splitlines()[-1])
