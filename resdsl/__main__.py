"""``python -m resdsl``: the same as the ``resdsl`` command."""

from resdsl.tools.cli import main

if __name__ == "__main__":
    main()
