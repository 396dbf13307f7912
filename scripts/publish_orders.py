"""Publish test order-step messages (same code as `orders publish`; see docs/cli.md)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from orders_cli.publish import main

if __name__ == "__main__":
    raise SystemExit(main())
