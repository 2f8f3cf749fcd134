"""GET /health/live and GET /health/ready, for the orchestrator."""

from __future__ import annotations

from collections.abc import Callable

import falcon

from payment.api.responses import write


class LiveResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        write(resp, 200, {"status": "live"})


class ReadyResource:
    """Ready when the database answers and the broker is reachable."""

    def __init__(self, checks: dict[str, Callable[[], bool]]) -> None:
        self.checks = checks  # name -> callable returning True when healthy

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        results: dict[str, str] = {}
        for name, check in self.checks.items():
            try:
                results[name] = "ok" if check() else "unavailable"
            except Exception:
                results[name] = "unavailable"
        ready = all(v == "ok" for v in results.values())
        write(resp, 200 if ready else 503, {"status": "ready" if ready else "not ready", "checks": results})
