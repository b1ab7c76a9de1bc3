"""``python -m nas.cli``: the ``hwnas`` command (used by ``hwnas search --workers``)."""
import sys

from nas.cli import main

sys.exit(main())
