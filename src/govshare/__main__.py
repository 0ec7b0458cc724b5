"""``python -m govshare``: the ``govshare`` command, for when the console script is
not on PATH."""

import sys

from govshare.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
