"""``python -m crossppl``: the same command line as the ``crossppl`` console script."""

import sys

from crossppl.cli import main

if __name__ == "__main__":
    sys.exit(main())
