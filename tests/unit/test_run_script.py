"""run.py, the Quick start's way in: uv from PATH when there is one, else installed once into
.tools/ with pip (in an environment of its own), else a clear message. The install itself
is checked by hand on Debian 12's system Python and on a pyenv Python (see the README)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_script", ROOT / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_command_it_says_how_to_use_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert _load().main([]) == 2
    assert "usage: python3 run.py COMMAND" in capsys.readouterr().err


def test_uv_on_path_runs_the_command_in_the_project(monkeypatch: pytest.MonkeyPatch) -> None:
    run = _load()
    ran: list[list[str]] = []
    monkeypatch.setattr(run.shutil, "which", lambda name: "/opt/bin/uv")
    monkeypatch.setattr(run.os, "execv", lambda path, argv: ran.append(argv))
    monkeypatch.setattr(run, "install_uv", lambda: pytest.fail("uv was on PATH"))
    run.main(["vigil", "demo"])
    assert ran == [["/opt/bin/uv", "run", "--project", str(ROOT), "vigil", "demo"]]


def test_without_uv_or_pip_it_names_both_ways_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _load()
    monkeypatch.setattr(run, "TOOLS", tmp_path / ".tools")
    monkeypatch.setattr(run, "_has_pip", lambda: False)
    monkeypatch.setattr(run.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit) as stopped:
        run.main(["pytest"])
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert f"{sys.executable} has no pip, and uv is not on PATH" in err
    assert "https://docs.astral.sh/uv/" in err
    assert "sudo apt install python3-pip" in err
    assert not (tmp_path / ".tools").exists()


def test_a_failed_install_leaves_nothing_behind(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _load()
    monkeypatch.setattr(run, "TOOLS", tmp_path / ".tools")
    monkeypatch.setattr(run, "_has_pip", lambda: True)
    monkeypatch.setattr(run.shutil, "which", lambda name: None)
    asked: list[list[str]] = []

    class Failed:
        returncode = 1

    def pip(argv: list[str], **_: Any) -> Failed:
        asked.append(argv)
        return Failed()

    monkeypatch.setattr(run.subprocess, "run", pip)
    with pytest.raises(SystemExit):
        run.main(["pytest"])
    assert asked
    assert asked[0][1:4] == ["-m", "pip", "install"]
    assert "--ignore-installed" in asked[0]
    assert asked[0][-1] == f"uv=={run.UV_VERSION}"
    assert not (tmp_path / ".tools").exists()
    assert "installing uv failed" in capsys.readouterr().err
