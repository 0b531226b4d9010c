"""``python -m syncammaster``: the ``syncammaster`` command."""

import sys

from .cli import main

sys.exit(main())
