"""``python -m dphelpers VERB``: the command line (:mod:`dphelpers.tools.cli`)."""
import sys

from .tools.cli import main

sys.exit(main())
