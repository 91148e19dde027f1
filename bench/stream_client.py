"""A lightweight Streamlit client: what a browser says over ``/_stcore/stream``, without a browser.

Streamlit's page talks protobuf over one WebSocket: the browser sends a ``BackMsg`` whose
``rerun_script`` (a ``ClientState``) carries the URL's query string, the page and every widget's
value; the server answers with ``ForwardMsg``s (``new_session`` at the start of a run, ``delta``s
that add elements, ``script_finished`` at the end). This client keeps the same state a browser
keeps (the page, the query string, the widgets the last run drew, the fragments that asked to be
rerun on a timer) so a benchmark can drive many sessions from one Python process: the server does
the same work per click as for a browser, minus the static files and images a browser also fetches
(those are HTTP requests served without running the script).

    client = StreamClient("http://127.0.0.1:8501")
    await client.open()                                  # the first run, like a page load
    await client.fill({"Class code": "owl-42", "Your name": "Ada"}, submit="Join")
    await client.click("▶ Play the demo")
    await client.set_value("C_P: poisoned concepts", "8")
    await client.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

DONE = ("FINISHED_SUCCESSFULLY", "FINISHED_FRAGMENT_RUN_SUCCESSFULLY")


@dataclass
class Widget:
    """One widget the last run drew: its element type, id, label and the fragment it lives in."""

    kind: str
    id: str
    label: str
    fragment_id: str = ""
    form_id: str = ""
    options: list[str] = field(default_factory=list)


class StreamClient:
    """One browser session, spoken in Streamlit's protocol (see the module docstring)."""

    def __init__(self, base_url: str, path: str = "", query: str = "", auto_rerun: bool = True):
        parsed = urlparse(base_url)
        self.ws_url = f"ws://{parsed.netloc}{parsed.path.rstrip('/')}/_stcore/stream"
        self.origin = f"http://{parsed.netloc}"
        self.page_name = path.strip("/")
        self.page_script_hash = ""
        self.query = query
        self.auto_rerun = auto_rerun
        self.widgets: dict[str, Widget] = {}  # label → widget, from the last full run
        self.values: dict[str, Any] = {}  # widget id → WidgetState of the widgets kept
        self.headings: list[str] = []
        self.texts: list[str] = []  # markdown, alerts and captions of the last run
        self.exceptions: list[str] = []
        self._ws: Any = None
        self._reader: asyncio.Task | None = None
        self._finished: asyncio.Queue[str] = asyncio.Queue()
        self._lock = asyncio.Lock()  # one run at a time per session, as in a browser
        self._timers: dict[str, asyncio.Task] = {}
        self.timed: dict[str, float] = {}  # fragment id → seconds, the timers the last run set
        self._fresh: dict[str, Widget] = {}
        self._full_run = False

    # ------------------------------------------------------------------ connection
    async def open(self, timeout: float = 120.0) -> float:
        """Connect and run the page (a page load); returns seconds to its script's end."""
        import websockets

        self._ws = await websockets.connect(
            self.ws_url,
            subprotocols=["streamlit"],  # type: ignore[list-item]
            origin=self.origin,  # type: ignore[arg-type]
            max_size=None,
            open_timeout=timeout,
            ping_interval=None,
        )
        self._reader = asyncio.create_task(self._read())
        return await self._rerun(timeout=timeout)

    async def close(self) -> None:
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    # ------------------------------------------------------------------ actions
    async def click(self, label: str, timeout: float = 120.0) -> float:
        """Press the button labelled ``label`` (a substring); seconds to the run's end."""
        w = self.widget(label)
        return await self._rerun({w.id: ("trigger_value", True)}, w.fragment_id, timeout)

    async def set_value(self, label: str, value: Any, timeout: float = 120.0) -> float:
        """Set the widget labelled ``label`` (select slider: the option's text; text input:
        the text; toggle: a bool); seconds to the run's end."""
        w = self.widget(label)
        kind = {"slider": "string_array_value", "text_input": "string_value"}.get(w.kind)
        if w.kind == "checkbox":
            kind = "bool_value"
        if kind is None:
            raise ValueError(f"setting a {w.kind} is not supported by this client")
        v = [str(value)] if kind == "string_array_value" else value
        self.values[w.id] = (kind, v)
        return await self._rerun({}, w.fragment_id, timeout)

    async def fill(self, fields: dict[str, str], submit: str, timeout: float = 120.0) -> float:
        """Type into a form's text inputs and press its submit button."""
        for label, text in fields.items():
            self.values[self.widget(label).id] = ("string_value", text)
        return await self.click(submit, timeout)

    async def goto(self, page_name: str, query: str = "", timeout: float = 120.0) -> float:
        """Open another page from the navigation (the URL path, e.g. ``generations``)."""
        self.page_name, self.page_script_hash, self.query = page_name, "", query
        return await self._rerun(timeout=timeout)

    async def tick(self, interval: float, timeout: float = 120.0) -> float:
        """One timer rerun, as the browser sends it, of the fragment whose timer has
        ``interval`` seconds (▶ Play's 3 s, the follow poll's 5 s)."""
        fid = next(f for f, s in self.timed.items() if abs(s - interval) < 1e-6)
        return await self._rerun(fragment_id=fid, timeout=timeout, auto=True)

    def widget(self, label: str) -> Widget:
        """The widget of the last run labelled ``label`` (else the first whose label contains
        it)."""
        if label in self.widgets:
            return self.widgets[label]
        for name, w in self.widgets.items():
            if label in name:
                return w
        raise KeyError(f"no widget labelled {label!r}; the page has {sorted(self.widgets)}")

    # ------------------------------------------------------------------ protocol
    async def _rerun(
        self,
        triggers: dict[str, tuple[str, Any]] | None = None,
        fragment_id: str = "",
        timeout: float = 120.0,
        auto: bool = False,
    ) -> float:
        async with self._lock:
            from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: TID251 — the wire protocol

            msg = BackMsg()
            cs = msg.rerun_script
            cs.query_string = self.query
            cs.page_script_hash = self.page_script_hash
            cs.page_name = self.page_name
            cs.fragment_id = fragment_id
            cs.is_auto_rerun = auto
            states = dict(self.values)
            states.update(triggers or {})
            for wid, (kind, value) in states.items():
                ws = cs.widget_states.widgets.add()
                ws.id = wid
                if kind == "string_array_value":
                    ws.string_array_value.data.extend(value)
                else:
                    setattr(ws, kind, value)
            while not self._finished.empty():
                self._finished.get_nowait()
            self._full_run = False
            t0 = time.monotonic()
            await self._ws.send(msg.SerializeToString())
            status = await asyncio.wait_for(self._finished.get(), timeout)
            while status not in DONE:
                status = await asyncio.wait_for(self._finished.get(), timeout)
            if self._full_run:  # the page's widgets are those of its last full run
                self.widgets = self._fresh
                kept = {w.id for w in self.widgets.values()}
                self.values = {k: v for k, v in self.values.items() if k in kept}
            return time.monotonic() - t0

    async def _read(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: TID251 — the wire protocol

        async for data in self._ws:
            msg = ForwardMsg()
            msg.ParseFromString(data)
            kind = msg.WhichOneof("type")
            if kind == "new_session" and not msg.metadata.run.fragment_ids:
                # a run of the whole page starts (also after st.rerun / switch_page): it draws
                # every widget and registers its fragments' timers again
                self.page_script_hash = msg.new_session.page_script_hash
                self._fresh = {}
                self._full_run = True
                self.headings, self.texts, self.exceptions = [], [], []
                for timer in self._timers.values():
                    timer.cancel()
                self._timers.clear()
                self.timed.clear()
            elif kind == "navigation":  # the page st.navigation runs: what the browser sends back
                nav = msg.navigation
                self.page_script_hash = nav.page_script_hash
                self.page_name = next(
                    (
                        p.url_pathname
                        for p in nav.app_pages
                        if p.page_script_hash == nav.page_script_hash
                    ),
                    self.page_name,
                )
            elif kind == "page_info_changed":
                self.query = msg.page_info_changed.query_string
            elif kind == "delta":
                self._delta(msg.delta)
            elif kind == "auto_rerun":
                self.timed[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
                if self.auto_rerun:
                    self._timer(msg.auto_rerun.fragment_id, msg.auto_rerun.interval)
            elif kind == "stop_auto_rerun":
                for fid in msg.stop_auto_rerun.fragment_ids:
                    self.timed.pop(fid, None)
                    timer = self._timers.pop(fid, None)
                    if timer is not None:
                        timer.cancel()
            elif kind == "script_finished":
                name = ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished)
                self._finished.put_nowait(name)

    def _delta(self, delta: Any) -> None:
        if delta.WhichOneof("type") != "new_element":
            return
        el = delta.new_element
        t = el.WhichOneof("type")
        sub = getattr(el, t) if t else None
        if t == "heading":
            self.headings.append(sub.body)
        elif t in ("markdown", "alert"):
            self.texts.append(sub.body)
        elif t == "exception":
            self.exceptions.append(f"{sub.type}: {sub.message}")
        wid = getattr(sub, "id", "") if sub is not None else ""
        label = getattr(sub, "label", "")
        if wid and label:
            options = list(getattr(sub, "options", []) or [])
            self._fresh[label] = Widget(
                t, wid, label, delta.fragment_id, getattr(sub, "form_id", ""), options
            )
            if not self._full_run:  # a fragment's own widgets, redrawn: keep them current
                self.widgets[label] = self._fresh[label]

    def _timer(self, fragment_id: str, interval: float) -> None:
        """A fragment with ``run_every``: rerun it on that timer, as the browser does."""
        old = self._timers.pop(fragment_id, None)
        if old is not None:
            old.cancel()

        async def tick() -> None:
            while True:
                await asyncio.sleep(interval)
                with contextlib.suppress(Exception):
                    await self._rerun(fragment_id=fragment_id, auto=True)

        self._timers[fragment_id] = asyncio.create_task(tick())


@contextlib.contextmanager
def streamlit_server(
    app_root: Path, env: Mapping[str, str], log_path: Path, timeout: float = 120.0
) -> Iterator[tuple[str, subprocess.Popen[bytes], float]]:
    """``python -m streamlit run app.py`` of ``app_root`` on 127.0.0.1 (a free port, no file
    watcher) with ``env`` added to this process's environment and ``app_root`` first on the
    PYTHONPATH; yields (url, process, monotonic time before the start) once /_stcore/health
    answers, and stops the server on exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    full = dict(os.environ, **env)
    full["PYTHONPATH"] = os.pathsep.join([str(app_root), full.get("PYTHONPATH", "")]).strip(
        os.pathsep
    )
    log = open(log_path, "wb")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "streamlit", "run", str(app_root / "app.py"),
            "--server.address", "127.0.0.1", "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none",
        ],
        cwd=app_root, env=full, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start; see {log_path}")
            time.sleep(0.05)
        yield url, proc, t0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


async def launch_chromium(playwright: Any) -> Any:
    """Debian's headless Chromium through Playwright's async API, as the benchmarks drive it."""
    return await playwright.chromium.launch(
        executable_path="/usr/bin/chromium",
        headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )
