"""``numlstm convert`` (a Keras model file to a numlstm model) and ``numlstm export`` (a numlstm
model to ONNX). Registered on the ``numlstm`` command group by :mod:`numlstm.cli`.

A refusal (an unsupported layer, a damaged file, a missing extra) is one ``Error: ...`` line on
stderr and exit status 2, like every other numlstm command.
"""

from __future__ import annotations

import warnings

import click


def _check_out_folder(out: str) -> None:
    # before any work: the folder exists and takes a new file, the name fits (one line, exit 2)
    from ..cli.common import check_output_path
    check_output_path(out, "OUT")


@click.command()
@click.argument("keras_path", metavar="IN.keras|IN.h5",
                type=click.Path(exists=True, dir_okay=False))
@click.argument("out", metavar="OUT.npz", type=click.Path(dir_okay=False))
def convert(keras_path, out):
    """Convert a trained Keras Sequential model (a Keras 3 .keras archive, or a legacy .h5 file
    of Keras 2 or 3) to a numlstm model file, without Keras. Run it with `numlstm predict`."""
    from .keras_import import load_keras_model
    _check_out_folder(out)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = load_keras_model(keras_path)
    for warning in caught:
        click.echo(f"note: {warning.message}")
    saved = model.save(out)
    layers = ", ".join(type(layer).__name__ for layer in model.layers)
    click.echo(f"converted {keras_path} ({layers}; {model.count_params():,} parameters) to "
               f"{saved}")


@click.command()
@click.argument("model_path", metavar="MODEL.npz", type=click.Path(exists=True, dir_okay=False))
@click.argument("out", metavar="OUT.onnx", type=click.Path(dir_okay=False))
@click.option("--opset", type=click.IntRange(min=14), default=None,
              help="ONNX opset to target (default: numlstm.interop.onnx_export.DEFAULT_OPSET).")
def export(model_path, out, opset):
    """Export a saved numlstm MODEL to an ONNX graph (standard LSTM operator, dynamic batch and
    timesteps) for ONNX Runtime and other ONNX servers. Needs numlstm[onnx]."""
    from ..models import load_model
    from .onnx_export import export_onnx
    _check_out_folder(out)
    model = load_model(model_path, backend="numpy")
    kwargs = {} if opset is None else {"opset": opset}
    saved = export_onnx(model, out, **kwargs)
    click.echo(f"exported {model_path} to {saved} (input {model.input_shape[1:]} with dynamic "
               f"batch and timesteps)")


#: The commands :mod:`numlstm.cli` adds to the ``numlstm`` group.
COMMANDS = (convert, export)
