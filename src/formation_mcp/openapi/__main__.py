"""`python -m formation_mcp.openapi`: see `formation_mcp.openapi.cli`."""

import sys

from formation_mcp.openapi.cli import main

sys.exit(main())
