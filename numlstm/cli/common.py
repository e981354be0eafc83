"""What every ``numlstm`` command shares: exit statuses, usage errors, the console and the
checks on output paths."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

__all__ = ["EXIT_CHECK_FAILED", "EXIT_USAGE", "UsageFailure", "make_console", "check_output_path",
           "write_output"]

EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2


class UsageFailure(click.ClickException):
    """A bad argument discovered after parsing (missing file, wrong shape): exit status 2."""

    exit_code = EXIT_USAGE


def make_console(stderr: bool = False):
    """A rich console on stdout (or stderr), without markup or highlighting."""
    from rich.console import Console
    stream = sys.stderr if stderr else sys.stdout
    # A pipe or a file gets wide lines rather than cells wrapped at 80 columns.
    width = None if stream.isatty() else int(os.environ.get("COLUMNS", 160))
    return Console(stderr=stderr, width=width, highlight=False, markup=False)


def check_output_path(path, option: str) -> None:
    """Before any work starts: ``path`` (an output file) can be created or replaced -- its
    folder exists and takes a new file (probed by creating and removing one), its name fits
    the file system, it is not a folder or a read-only file. Otherwise a one-line usage error
    (exit status 2), rather than a traceback after the work is done."""
    target = Path(os.path.abspath(path))      # not resolve(): it fails on too-long names
    folder = target.parent
    if not folder.is_dir():
        raise UsageFailure(f"{option}: the folder of {path!r} does not exist")
    try:
        name_max = os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):
        name_max = 255
    if len(os.fsencode(target.name)) > name_max:
        raise UsageFailure(f"{option}: the file name of {path!r} is "
                           f"{len(os.fsencode(target.name))} bytes long; this file system "
                           f"allows at most {name_max}")
    if target.is_dir():
        raise UsageFailure(f"{option}: {path!r} is a folder, not a file")
    probe = folder / f".numlstm-write-probe-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"\0" * 4096)       # a full disk refuses data, not only new names
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as error:
        raise UsageFailure(f"{option}: the folder of {path!r} is not writable "
                           f"({error.strerror or error})") from None
    if target.exists() and not os.access(target, os.W_OK):
        raise UsageFailure(f"{option}: {path!r} exists and is not writable")


def write_output(path, option: str, write) -> None:
    """Run ``write()``; a failure to write ``path`` (disk full meanwhile, ...) becomes a
    one-line usage error naming the option."""
    try:
        write()
    except OSError as error:
        raise UsageFailure(f"{option}: could not write {str(path)!r} "
                           f"({error.strerror or error})") from None
