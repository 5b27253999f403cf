"""The ``hooklens`` command: ``hooklens demo`` opens the walkthrough notebooks in JupyterLab."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
# Installed from a wheel the notebooks live inside the package; in a source checkout they are
# the repository's notebooks/ folder.
_NOTEBOOK_DIRS = (_PACKAGE_DIR / "_notebooks", _PACKAGE_DIR.parent / "notebooks")
FIRST_NOTEBOOK = "quickstart.ipynb"


def notebooks_dir() -> Path:
    """The folder holding the walkthrough notebooks shipped with hooklens."""
    for folder in _NOTEBOOK_DIRS:
        if (folder / FIRST_NOTEBOOK).is_file():
            return folder
    raise FileNotFoundError(
        f"hooklens cannot find its notebooks (looked in {', '.join(map(str, _NOTEBOOK_DIRS))}); "
        "reinstall hooklens."
    )


def copy_notebooks(destination: Path) -> list[Path]:
    """Copy the notebooks into ``destination``, never overwriting a notebook already there
    (it may hold the user's edits). Returns the notebooks that are now in ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    copied = []
    for notebook in sorted(notebooks_dir().glob("*.ipynb")):
        target = destination / notebook.name
        if not target.exists():
            shutil.copy2(notebook, target)
        copied.append(target)
    return copied


def _demo(args: argparse.Namespace, jupyter_args: list[str]) -> int:
    workdir = Path(args.dir).expanduser().resolve()
    copy_notebooks(workdir)
    command = [
        sys.executable, "-m", "jupyter", "lab",
        f"--ServerApp.root_dir={workdir}", "--ip=127.0.0.1", f"--port={args.port}",
        f"--LabApp.default_url=/lab/tree/{FIRST_NOTEBOOK}",
    ]  # fmt: skip
    if args.no_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # JupyterLab refuses to start as root without it
    command += jupyter_args
    print(f"hooklens: notebooks in {workdir}; starting JupyterLab on 127.0.0.1:{args.port}")
    sys.stdout.flush()
    os.execv(sys.executable, command)
    return 0  # not reached: execv replaces this process


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hooklens", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="copy the walkthrough notebooks to a folder and open quickstart.ipynb in JupyterLab",
        description="Any further options are passed to `jupyter lab`.",
    )
    demo.add_argument("--dir", default="hooklens-notebooks", help="working folder (created)")
    demo.add_argument("--port", type=int, default=8888, help="port on 127.0.0.1 (default 8888)")
    demo.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args, rest = build_parser().parse_known_args(argv)
    if args.command == "demo":
        return _demo(args, rest)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
