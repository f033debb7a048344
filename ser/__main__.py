"""``python -m ser``: the same as the ``ser`` command."""

import sys

from ser.cli import main

sys.exit(main())
