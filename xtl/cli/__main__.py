"""``python -m xtl.cli``: the same as the ``xtl`` command."""

import sys

from xtl.cli import main

sys.exit(main())
