"""Post a run's JSON summary to a webhook (Slack-style incoming hooks, CI, an alert router)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from lakeloom.errors import MonitoringError

__all__ = ["post_summary"]


def post_summary(url: str, summary: dict[str, Any], *, timeout: float = 10.0) -> int:
    """POST ``summary`` as JSON to ``url``; returns the HTTP status (2xx), else raises."""
    body = json.dumps(summary, default=str).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "lakeloom-monitor"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        raise MonitoringError(f"webhook {url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MonitoringError(f"cannot post to webhook {url}: {reason}") from None
    return status
