"""Plotly figures to PNG bytes with Kaleido and the system Chromium.

Kaleido 1.x drives a headless Chrome through ``choreographer``. Which browser: the
``DIGESTS_CHROMIUM_PATH`` setting, else the ``BROWSER_PATH`` environment variable (read by
choreographer itself), else ``/usr/bin/chromium`` when it exists, else whatever Chrome
choreographer finds on the PATH. The browser runs headless and without its sandbox
(choreographer passes ``--no-sandbox`` unless asked otherwise), which is what running as
root in a container needs. MathJax is off, so nothing is fetched from a CDN; plotly.js is
the copy shipped with the plotly package.

One Chromium is started per process on first use and kept, because starting it costs
seconds and a chart costs a fraction of one; a failed or timed-out render closes it, and
the next render starts a fresh one.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from django.conf import settings

logger = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEFAULT_CHROMIUM = "/usr/bin/chromium"


class ChartRenderError(RuntimeError):
    """Chromium could not render a chart (not found, crashed or too slow)."""


def browser_path() -> str | None:
    configured = getattr(settings, "DIGESTS_CHROMIUM_PATH", "") or os.environ.get("BROWSER_PATH")
    if configured:
        return configured
    return DEFAULT_CHROMIUM if Path(DEFAULT_CHROMIUM).exists() else None


class _Renderer:
    """A Kaleido session on its own event-loop thread, shared by the threads of a process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._kaleido: Any = None
        self._pid: int | None = None

    def _start(self) -> None:
        import kaleido

        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="digest-kaleido", daemon=True)
        thread.start()
        options: dict[str, Any] = {"n": 1, "mathjax": False}
        path = browser_path()
        if path:
            options["path"] = path

        async def open_session() -> Any:
            session = kaleido.Kaleido(**options)
            await session.open()
            return session

        try:
            self._kaleido = asyncio.run_coroutine_threadsafe(open_session(), loop).result(
                timeout=self._timeout()
            )
        except Exception as exc:
            loop.call_soon_threadsafe(loop.stop)
            raise ChartRenderError(f"Could not start Chromium for charts: {exc}") from exc
        self._loop, self._thread, self._pid = loop, thread, os.getpid()

    @staticmethod
    def _timeout() -> float:
        return float(getattr(settings, "DIGESTS_CHART_TIMEOUT_SECONDS", 60))

    def close(self) -> None:
        loop, session = self._loop, self._kaleido
        self._loop = self._thread = self._kaleido = self._pid = None
        if loop is None:
            return
        if session is not None and loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(session.close(), loop).result(timeout=15)
            except Exception:  # a dead browser cannot be closed politely
                logger.warning("Closing the chart browser failed", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)

    def render(self, figures: list[tuple[go.Figure, int, int]], scale: float) -> list[bytes]:
        with self._lock:
            if self._loop is not None and self._pid != os.getpid():
                # Forked (a prefork worker child): the parent's browser is not ours.
                self._loop = self._thread = self._kaleido = self._pid = None
            if self._loop is None:
                self._start()
            assert self._loop is not None
            results: list[bytes] = []
            try:
                for fig, width, height in figures:
                    opts = {"format": "png", "width": width, "height": height, "scale": scale}
                    future: Future = asyncio.run_coroutine_threadsafe(
                        self._kaleido.calc_fig(fig.to_dict(), opts=opts), self._loop
                    )
                    results.append(future.result(timeout=self._timeout()))
            except Exception as exc:
                self.close()
                raise ChartRenderError(f"Chart rendering failed: {exc}") from exc
            return results


_renderer = _Renderer()


def figures_to_png(figures: list[tuple[go.Figure, int, int]], *, scale: float = 2.0) -> list[bytes]:
    """PNG bytes of each (figure, width px, height px), in order (``scale`` 2 for sharp
    images on high-density screens; the mail shows them at width px)."""
    if not figures:
        return []
    images = _renderer.render(figures, scale)
    for data in images:
        if not data.startswith(PNG_SIGNATURE):
            raise ChartRenderError("Chromium returned something that is not a PNG.")
    return images


def renderer_close() -> None:
    """Stop this process's chart browser (tests, shutdown)."""
    with _renderer._lock:
        _renderer.close()


atexit.register(renderer_close)
