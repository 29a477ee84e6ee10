"""Hot reload: follow moved aliases and a changed endpoint file, without a restart.

A :class:`Reloader` thread wakes every ``poll_interval``. For each model URI that can move
(an alias, ``latest``) it asks the registry which version it points at; a new version is
downloaded, loaded and warmed in this thread, then swapped into its slot (one attribute
assignment: requests already checked against the old version finish with it). A version
that fails to load is not swapped in; the old one keeps serving, ``/ready`` says
``degraded`` with the reason, and the version is retried only after a while. The previous
version stays loaded, so a rollback to it is instant.

When the endpoint file changed (size or modification time), it is read and validated; new
routes, weights, shadow, limits and API keys apply at once (models it newly names are
loaded first). An invalid file keeps the running configuration and is reported the same
way. Batching, the inference table and metrics settings apply at the next start.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from lakeloom.deployment.auth import ApiKeys
from lakeloom.deployment.config import load_endpoint_config
from lakeloom.deployment.models import load_version, resolve_version
from lakeloom.errors import DeploymentError, LakeloomError, ModelLoadError

if TYPE_CHECKING:
    from lakeloom.deployment.runtime import EndpointRuntime

__all__ = ["Reloader"]

log = logging.getLogger("lakeloom.deployment")


class Reloader:
    """The poller of one :class:`~lakeloom.deployment.runtime.EndpointRuntime`."""

    def __init__(self, runtime: EndpointRuntime) -> None:
        self.runtime = runtime
        self.path = runtime.config_path
        self._config_sig = self._signature()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start polling in a background thread."""
        self._thread = threading.Thread(
            target=self._poll, name=f"lakeloom-reload-{self.runtime.config.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop polling (a load in progress finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _signature(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _poll(self) -> None:
        while not self._stop.wait(self.runtime.config.poll_interval_s):
            try:
                self.check_config()
                self.check_aliases()
            except Exception:  # the poller must outlive any surprise
                log.exception("reload check failed")

    def check_config(self) -> None:
        """Apply a changed config file's routes, weights and shadow (no restart)."""
        rt = self.runtime
        sig = self._signature()
        if self.path is None or sig is None or sig == self._config_sig:
            return
        self._config_sig = sig
        try:
            new = load_endpoint_config(self.path)
            if new.name != rt.config.name:
                raise DeploymentError(
                    f"{self.path}: the endpoint's name cannot change while it runs "
                    f"({rt.config.name!r} to {new.name!r}); restart it"
                )
            slots = dict(rt.slots)
            for ref in new.model_refs():
                if ref.uri not in slots:
                    slots[ref.uri] = rt.load_ref(ref)
            router = rt.build_router(new, slots)
        except LakeloomError as exc:
            rt.config_error = str(exc)
            log.error("kept the running configuration: %s", exc)
            return
        for uri in slots:
            if uri not in rt.slots:
                rt.slots[uri] = slots[uri]
                rt.batcher(uri)
        rt.config = replace(
            rt.config,
            routes=new.routes,
            shadow=new.shadow,
            routing=new.routing,
            limits=new.limits,
            auth=new.auth,
            poll_interval_s=new.poll_interval_s,
        )
        rt.keys = ApiKeys(new.auth.api_key_hashes)
        rt.router = router
        rt.config_error = None
        log.info(
            "applied %s: %s",
            self.path,
            ", ".join(f"{r.name}={r.weight:g}" for r in new.routes),
        )

    def check_aliases(self) -> None:
        """Follow moved aliases: load, warm and swap; keep the old version on failure."""
        rt = self.runtime
        retry_after = max(30.0, 10 * rt.config.poll_interval_s)
        for uri, slot in list(rt.slots.items()):
            if not slot.ref.moves:
                continue
            try:
                version = resolve_version(rt.client(), slot.ref)
            except ModelLoadError as exc:
                if slot.failure is None or slot.failure[1] != str(exc):
                    log.error("%s; still serving version %s", exc, slot.handle.version)
                slot.failure = (-1, str(exc), time.time())
                continue
            if version == slot.handle.version:
                if slot.failure is not None and slot.failure[0] == -1:
                    slot.failure = None
                continue
            if not slot.should_retry(version, retry_after):
                continue
            try:
                handle = slot.cached(version) or load_version(
                    rt.ctx.tracking,
                    slot.ref,
                    version,
                    trusted_types=rt.config.trusted_types,
                    allow_pickle=rt.config.allow_pickle,
                    online_store=rt.online_store,
                )
            except ModelLoadError as exc:
                slot.failure = (version, str(exc), time.time())
                rt.reload_failures[uri] = rt.reload_failures.get(uri, 0) + 1
                log.error("%s; still serving version %s", exc, slot.handle.version)
                continue
            old = slot.swap(handle)
            gc.freeze()  # the new version's objects, as at start (no collection: no stall)
            log.info("%s now serves version %s (was %s)", uri, handle.version, old.version)
