"""``python -m neurofit`` = the ``neurofit`` command."""
import sys

from .cli.main import main

sys.exit(main())
