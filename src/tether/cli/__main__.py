"""``python -m tether.cli``."""

import os

from tether.cli import main

os.environ.setdefault("PYTHONUNBUFFERED", "1")
main()
