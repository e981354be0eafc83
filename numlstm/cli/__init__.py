"""The ``numlstm`` command: list, check and time the backends; train and use models.

    numlstm backends                     # which backends can run here, and why not
    numlstm check                        # every usable backend against the reference
    numlstm bench --config b --peer torch    # or --peer ort (ONNX Runtime)
    numlstm train digits --epochs 5 --out model.npz
    numlstm predict model.npz inputs.npy --out outputs.npy

Exit status: 0 on success, 1 when a check fails (``check``, or a backend that ``bench``
refused to time), 2 for a bad argument (one line on stderr, no traceback), including a
``--backends`` selection that leaves nothing usable to time or check.

The commands live beside this group: :mod:`numlstm.cli.harness` (``backends``, ``bench``,
``check``), :mod:`numlstm.cli.models` (``train``, ``evaluate``, ``predict``, ``summary``) and
:mod:`numlstm.interop.commands` (``convert``, ``export``); :mod:`numlstm.cli.common` holds what
they share.
"""

from __future__ import annotations

import sys

import click

from .. import __version__
from ..errors import BackendUnavailableError
from ..interop.commands import COMMANDS as _INTEROP_COMMANDS
from . import harness, models
from .common import EXIT_USAGE

__all__ = ["main"]


class _Group(click.Group):
    """Prints click's usage errors as one line (``Error: ...``) instead of the usage block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as error:
            click.echo(error.ctx.get_help())
            sys.exit(0)
        except click.UsageError as error:
            click.echo(f"Error: {error.format_message()}", err=True)
            sys.exit(EXIT_USAGE)
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        except click.exceptions.Exit as error:
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except (ValueError, TypeError, BackendUnavailableError, ImportError) as error:
            # numlstm's own checks (shapes, dtypes, names, model files), a backend that cannot
            # run here, a missing optional extra: each message names the problem and the fix
            click.echo(f"Error: {error}", err=True)
            sys.exit(EXIT_USAGE)
        sys.exit(0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="numlstm")
def main():
    """numlstm: fast LSTM layers without a deep-learning framework."""


for _command in (*harness.COMMANDS, *models.COMMANDS, *_INTEROP_COMMANDS):
    main.add_command(_command)
