#!/usr/bin/env python3
"""Render values.yaml into every configuration file the stack needs.

    python render.py                      # values.yaml -> config/
    python render.py --values extra.yaml  # overlays, later files win, maps merged deeply
    python render.py --output DIR         # render somewhere else
    python render.py --check              # exit 1 and list the files when config/ is stale

Exit codes: 0 success, 1 invalid input (one line per problem on stderr), 2 usage error.
On any failure the output directory is left exactly as it was. The engine is the
`bundle` package next to this file.
"""

import sys

from bundle.cli import main

if __name__ == "__main__":
    sys.exit(main())
