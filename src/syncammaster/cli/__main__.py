"""``python -m syncammaster.cli``: the ``syncammaster`` command."""

import sys

from . import main

sys.exit(main())
