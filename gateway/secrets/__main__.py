"""`python -m gateway.secrets genkey | encrypt | rotate`."""

import sys

from gateway.secrets import main

raise SystemExit(main(sys.argv[1:]))
