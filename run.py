"""Run a command of this project with uv, installing uv first when this machine has none.

    python3 run.py vigil demo      # the console, on a demo desk
    python3 run.py pytest          # the tests

uv comes from PATH, else from `.tools/`, where it is installed once, with pip, into a
virtual environment of its own. That environment is made without pip (so the `venv`
package's ensurepip is not needed) and sees this Python's own pip; inside it pip installs
freely, also where this Python refuses `pip install` as externally managed (Debian 12,
Ubuntu 24.04). Then `uv run` installs the locked dependencies into `.venv/` and runs the
command there.

Standard library only, and old syntax on purpose: this file runs before anything else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

UV_VERSION = "0.13.9"
"""The uv this project is developed with; any recent uv on PATH is used as it is."""
HERE = Path(__file__).resolve().parent
TOOLS = HERE / ".tools"
WINDOWS = os.name == "nt"


def _tool(name: str) -> Path:
    folder = TOOLS / ("Scripts" if WINDOWS else "bin")
    return folder / (name + (".exe" if WINDOWS else ""))


def _say(text: str) -> None:
    sys.stderr.write("run.py: " + text + "\n")
    sys.stderr.flush()


def _has_pip() -> bool:
    probe = [sys.executable, "-c", "import pip"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def install_uv() -> Path:
    """uv in `.tools/`, installed with pip into a virtual environment of its own."""
    uv = _tool("uv")
    if uv.exists():
        return uv
    if not _has_pip():
        _say(
            f"{sys.executable} has no pip, and uv is not on PATH. Install either one and run "
            "this again: uv from https://docs.astral.sh/uv/getting-started/installation/, "
            "or pip (Debian, Ubuntu: sudo apt install python3-pip)."
        )
        raise SystemExit(1)
    _say(f"uv is not on PATH: installing uv {UV_VERSION} into {TOOLS.name}/ (once)")
    venv.EnvBuilder(with_pip=False, system_site_packages=True, clear=True).create(TOOLS)
    python = _tool("python")
    install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    install.append("--ignore-installed")  # into .tools/, even if this Python has a uv
    result = subprocess.run([*install, "uv==" + UV_VERSION], check=False)
    if result.returncode != 0 or not uv.exists():
        shutil.rmtree(TOOLS, ignore_errors=True)
        _say("installing uv failed (see pip's message above); nothing was left behind.")
        raise SystemExit(1)
    return uv


def main(argv: list[str]) -> int:
    if not argv:
        _say("usage: python3 run.py COMMAND [ARGS...], e.g. `vigil demo` or `pytest`")
        return 2
    found = shutil.which("uv")
    uv = Path(found) if found else install_uv()
    command = [str(uv), "run", "--project", str(HERE), *argv]
    if WINDOWS:
        return subprocess.run(command, check=False).returncode
    os.execv(command[0], command)  # the command takes over this process and its terminal


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
