#!/usr/bin/env python3
"""propdev's one entry point: serve | seed-demo | partner-sim | pki … | audit | retention."""

import sys

from propdev.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
