"""Helper process for the racing-promotions test (not a test module).

Usage: race_promote.py WORKSPACE MODEL VERSION READY_FILE GO_FILE
Opens the workspace, signals readiness, waits for the go file, promotes, prints the event.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from lakeloom import Workspace

root, model, version, ready, go = sys.argv[1:6]
ws = Workspace.open(root)
ws.registry.current(model, "production")  # warm up: imports and connections
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.001)
event = ws.registry.promote(model, int(version), "production", reason=f"race {version}")
print(json.dumps(event.to_dict() if event else None))
sys.stdout.flush()
ws.close()
os._exit(0)
