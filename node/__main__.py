"""`python -m node` runs the `bft-node` command line."""

import sys

from node.cli.main import main

sys.exit(main())
