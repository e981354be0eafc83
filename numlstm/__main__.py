"""``python -m numlstm``: the same as the ``numlstm`` command."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="numlstm")
