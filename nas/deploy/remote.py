"""The client of hwnas's latency agent (:mod:`nas.deploy.device_agent`): send an exported file
to the agent on the user's device and get its timings back.

An agent that cannot be reached (stopped, restarting, a network blip) is retried with backoff
for ``ride_out_s`` before the measurement fails with one line; a refused token, a runtime the
device lacks or a file it cannot run fail at once, naming the reason.
"""
from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from nas.core.errors import UserError
from nas.deploy.host_latency import LatencyMeasurement

log = logging.getLogger(__name__)

TOKEN_ENV = "HWNAS_AGENT_TOKEN"  # the agent's default (nas.deploy.device_agent.TOKEN_ENV)


@dataclass(frozen=True)
class RemoteAgent:
    """An agent at ``url`` with its ``token``."""

    url: str
    token: str
    ride_out_s: float = 120.0  # how long an unreachable agent is waited for (a restart, a blip)
    timeout_s: float = 600.0  # one request's limit (the agent bounds its own measurement)

    @classmethod
    def from_env(cls, url: str, token_env: str = TOKEN_ENV, *, ride_out_s: float = 120.0) -> RemoteAgent:
        token = os.environ.get(token_env, "")
        if not token:
            raise UserError(f"the device agent at {url} needs its token in the environment variable {token_env}; "
                            "allowed: the secret the agent was started with")
        return cls(url.rstrip("/"), token, ride_out_s=ride_out_s)

    def info(self) -> dict[str, Any]:
        """The runtimes and conditions the agent reports."""
        return self._call("GET", "/info", None)

    def measure(self, model: bytes, *, runtime: str = "onnxruntime", threads: int = 1, warmup: int = 10,
                repeats: int = 50) -> LatencyMeasurement:
        """Median and 90th percentile of ``repeats`` runs of ``model`` on the device."""
        query = urlencode({"runtime": runtime, "threads": threads, "warmup": warmup, "repeats": repeats})
        data = self._call("POST", f"/measure?{query}", model)
        where = f"device {data['conditions'].get('host', '?')} ({data['conditions'].get('machine', '?')}) " \
                f"through the hwnas agent at {self.url}"
        return LatencyMeasurement(median_ms=float(data["median_ms"]), p90_ms=float(data["p90_ms"]),
                                  threads=int(data["threads"]), repeats=int(data["repeats"]),
                                  warmup=int(data["warmup"]), runtime=str(data["runtime"]), where=where)

    def _call(self, method: str, path: str, body: bytes | None) -> dict[str, Any]:
        started, wait = time.monotonic(), 0.5
        while True:
            request = urllib.request.Request(self.url + path, data=body, method=method,
                                             headers={"Authorization": f"Bearer {self.token}",
                                                      "Content-Type": "application/octet-stream"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:  # noqa: S310 - the user's URL
                    result: dict[str, Any] = json.loads(answer.read())
                    return result
            except urllib.error.HTTPError as exc:  # the agent answered: its reason, at once
                reason = _reason(exc)
                raise UserError(f"device agent at {self.url}: {reason}") from None
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                waited = time.monotonic() - started
                if waited >= self.ride_out_s:
                    cause = getattr(exc, "reason", exc)
                    raise UserError(f"device agent at {self.url} unreachable for {waited:.0f} s ({cause}); start it "
                                    "on the device (hwnas device serve) or check the profile's remote.url") from None
                log.warning("device agent at %s unreachable (%s); retrying in %.1f s", self.url,
                            getattr(exc, "reason", exc), wait)
                time.sleep(wait)
                wait = min(wait * 2, 10.0)


def _reason(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("error") or exc.reason)
    except (ValueError, OSError):
        return f"HTTP {exc.code} {exc.reason}"
