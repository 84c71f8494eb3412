"""``python -m mt5bridge`` is the bridge server (same options as ``python -m mt5bridge.server``)."""

import sys

from mt5bridge.server import main

sys.exit(main())
