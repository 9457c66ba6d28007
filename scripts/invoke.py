#!/usr/bin/env python3
"""Docker-free `sam local invoke` (``oxolocal.invoke``; also ``oxoflow-notify invoke``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from oxolocal.invoke import main

if __name__ == "__main__":
    sys.exit(main())
