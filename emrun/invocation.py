"""The program as the user ran it, for the commands emrun prints (a resume hint, a re-run, a next
step), so that each works when pasted: ``emrun`` when that name on PATH is this program,
``.venv/bin/emrun`` when it was run by that path, ``python -m emrun.cli`` when run so. Text written
into results folders (reports, manifests) keeps the plain ``emrun``: it must not depend on who ran it."""

from __future__ import annotations

import os
import shlex
import shutil
import sys


def program_words() -> list[str]:
    """The words that started this program, without its arguments."""
    original = getattr(sys, "orig_argv", None)  # Python 3.10+: the interpreter's own command line
    if original and "-m" in original[:len(original) - len(sys.argv) + 1]:
        return list(original[:len(original) - len(sys.argv) + 1])  # python -m emrun.cli, as typed
    script = sys.argv[0] if sys.argv and sys.argv[0] else "emrun"
    name = os.path.basename(script)
    found = shutil.which(name)
    if found and os.path.realpath(found) == os.path.realpath(script):
        return [name]  # the name on PATH is this program: as the README writes it
    return [script]  # e.g. .venv/bin/emrun: the same path works from the same folder


def program() -> str:
    """:func:`program_words`, quoted for the shell."""
    return shlex.join(program_words())


def command(*arguments: str) -> str:
    """A command line to print: the program as it was run, then ``arguments``, quoted for the shell."""
    return shlex.join([*program_words(), *arguments])
