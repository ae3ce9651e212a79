"""``python -m v0lite``: the same as the ``v0lite`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
