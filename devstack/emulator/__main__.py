"""`python -m devstack.emulator`."""

import sys

from .cli import main

sys.exit(main())
