"""The one Gateway of a worker process, built on first use from the environment.

ZHOUXIN_WORKSPACE and ZHOUXIN_PROFILE select the stores, as for every other command; the BentoML class
and the auth middleware of the same process share this instance.
"""

from __future__ import annotations

import threading

from serving.gateway import Gateway

_lock = threading.Lock()
_gateway: Gateway | None = None


def gateway() -> Gateway:
    global _gateway
    if _gateway is None:
        with _lock:
            if _gateway is None:
                from kernel.profile import load_profile
                from kernel.workspace import workspace_dir
                from serving.config import load_serving_config

                _gateway = Gateway(workspace_dir(), load_profile(), load_serving_config())
    return _gateway
