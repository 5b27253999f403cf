"""The `hooklens` command: `hooklens demo` opens the walkthrough notebooks in JupyterLab."""

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


DEFAULT_DIR = "hooklens-notebooks"
DEFAULT_PORT = 8888

_DESCRIPTION = "hooklens: hook points, caches, patching and notebook views for Hugging Face models."
_DEMO_HELP = "copy the walkthrough notebooks to a folder and open quickstart.ipynb in JupyterLab"
_DEMO_DESCRIPTION = f"""\
Copy the walkthrough notebooks (quickstart, real_model, hooks) into --dir, never overwriting a
notebook already there, and start JupyterLab on 127.0.0.1. JupyterLab prints the address to
open, with its access token (http://127.0.0.1:{DEFAULT_PORT}/lab/tree/{FIRST_NOTEBOOK}?token=...);
press Ctrl-C twice in this terminal to stop it. Any further options go to `jupyter lab`."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hooklens", description=_DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help=_DEMO_HELP,
        description=_DEMO_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--dir",
        default=DEFAULT_DIR,
        help=f"folder for the notebooks (default: ./{DEFAULT_DIR})",
    )
    demo.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port on 127.0.0.1 (default: {DEFAULT_PORT})",
    )
    demo.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args, rest = build_parser().parse_known_args(argv)
    if args.command == "demo":
        return _demo(args, rest)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
