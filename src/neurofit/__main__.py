"""``python -m neurofit`` = the ``neurofit`` command."""
import sys

from .cli import main

sys.exit(main())
