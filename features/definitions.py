"""Feast definitions for the Feast CLI, generated from the catalog and the mart declarations.

Feast discovers objects by scanning module-level names (STACK-NOTES §0.2), so every generated view and
service is bound to its own name here. This file is only imported by the Feast CLI; the platform applies
the same objects with `zhouxin features apply` (store.apply), which needs no module-level names.
The workspace is ZHOUXIN_WORKSPACE or the repository's ./workspace.
"""

import os
from pathlib import Path

from data.feature_store.pipeline import definitions

_ws = Path(os.environ.get("ZHOUXIN_WORKSPACE", Path(__file__).resolve().parent.parent / "workspace"))
_defs = definitions(_ws)
enterprise = _defs.entity
for _name, _obj in {**{f"view_{k}": v for k, v in _defs.views.items()},
                    **{f"service_{k}": s for k, s in _defs.services.items()}}.items():
    globals()[_name] = _obj
