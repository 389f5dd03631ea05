"""``python -m edgemine.cli``: the same as the ``edgemine`` command."""

from . import main

if __name__ == "__main__":
    main(prog_name="edgemine")
