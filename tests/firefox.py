"""A small WebDriver BiDi client for a headless Firefox (Debian's firefox-esr).

Firefox speaks WebDriver BiDi itself: started with --remote-debugging-port it serves a
WebSocket at ws://127.0.0.1:PORT/session, so no driver is needed. This module starts one as
a child process with a fresh profile, speaks JSON commands to it over aiohttp's WebSocket
client, and offers plain synchronous methods (each runs the client's own asyncio loop until
its answer comes):

    with Firefox() as firefox:
        tab = firefox.tab()
        tab.navigate("http://127.0.0.1:8080/jobs")
        assert tab.evaluate("document.title") == "..."
        tab.click("button[type=submit]")
        tab.screenshot(Path("page.png"))

A command the browser refuses raises BiDiError with its error code and message.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Optional

import aiohttp

__all__ = ["BiDiError", "Firefox", "FirefoxError", "Tab", "firefox_binary"]

START_TIMEOUT = 60.0
COMMAND_TIMEOUT = 30.0
# a profile that stays quiet: no first-run pages, updates, telemetry or other traffic of
# its own (Firefox also applies its recommended automation preferences under remote control)
PREFERENCES: dict[str, object] = {
    "remote.active-protocols": 1,  # WebDriver BiDi only
    "browser.startup.page": 0,
    "browser.startup.homepage": "about:blank",
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.newtabpage.enabled": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.aboutwelcome.enabled": False,
    "trailhead.firstrun.didSeeAboutWelcome": True,
    "app.update.disabledForTesting": True,
    "app.normandy.enabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "extensions.update.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "services.settings.server": "http://127.0.0.1:9/",
}
STALE = ("no such node", "no such element", "stale element reference", "move target out of bounds")
KEYS = {"Tab": "\ue004", "Enter": "\ue007", "Escape": "\ue00c"}


class FirefoxError(Exception):
    """Firefox could not be started or spoken to."""


class BiDiError(FirefoxError):
    """A command that Firefox answered with an error."""

    def __init__(self, method: str, error: str, message: str) -> None:
        super().__init__(f"{method}: {error}: {message}")
        self.method = method
        self.error = error
        self.message = message


class ScriptError(FirefoxError):
    """A script that threw in the page."""


def firefox_binary() -> Optional[str]:
    """Debian's Firefox ESR, or a Firefox on the PATH; None when there is neither."""
    return shutil.which("firefox-esr") or shutil.which("firefox")


def _user_js(preferences: dict[str, object]) -> str:
    return "".join(
        f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in preferences.items()
    )


class Firefox:
    """A headless Firefox of its own (a fresh profile in a temporary directory), stopped
    by its pid when closed, and killed with its process group when anything fails."""

    def __init__(self, binary: Optional[str] = None, timeout: float = START_TIMEOUT) -> None:
        found = binary or firefox_binary()
        if found is None:
            raise FirefoxError("no Firefox: install Debian's firefox-esr")
        self.profile = Path(tempfile.mkdtemp(prefix="cronplus-firefox-"))
        (self.profile / "user.js").write_text(_user_js(PREFERENCES))
        self.log_path = self.profile.parent / f"{self.profile.name}.log"
        self.loop = asyncio.new_event_loop()
        self.events: list[dict[str, Any]] = []
        self._next_id = 0
        self._http: Optional[aiohttp.ClientSession] = None
        self._ws: Optional[aiohttp.ClientWebSocketResponse[bool]] = None
        self.process: Optional[subprocess.Popen[bytes]] = None
        self._first_tab_taken = False
        try:
            with open(self.log_path, "wb") as log:
                argv = [found, "--headless", "--no-remote", "--remote-debugging-port=0"]
                self.process = subprocess.Popen(
                    [*argv, "--profile", str(self.profile)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "MOZ_CRASHREPORTER_DISABLE": "1", "MOZ_HEADLESS": "1"},
                    start_new_session=True,  # its own group, so its content processes go too
                )
            port = self._wait_for_port(timeout)
            self.loop.run_until_complete(self._connect(port, timeout))
            self.session = self.command("session.new", capabilities={})
            self.capabilities: dict[str, Any] = self.session["capabilities"]
        except BaseException:
            self._kill()
            raise

    # --- the process ----------------------------------------------------------------------

    def _wait_for_port(self, timeout: float) -> int:
        """The port Firefox chose: it writes it in WebDriverBiDiServer.json in the profile."""
        assert self.process is not None
        written = self.profile / "WebDriverBiDiServer.json"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise FirefoxError(f"Firefox exited with {self.process.returncode}: {self.log()}")
            with contextlib.suppress(OSError, ValueError, KeyError):
                return int(json.loads(written.read_text())["ws_port"])
            time.sleep(0.1)
        raise FirefoxError(f"Firefox did not listen within {timeout:.0f}s: {self.log()}")

    def log(self) -> str:
        """The end of what Firefox printed."""
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def close(self) -> None:
        """Closes the browser (browser.close), waits for its process, and removes the profile;
        a Firefox that does not go is sent SIGTERM, then SIGKILL."""
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(FirefoxError, aiohttp.ClientError):
                self.command("browser.close", timeout=10)
        self._kill(grace=15.0)

    def _kill(self, grace: float = 0.0) -> None:
        process = self.process
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(grace)
            for signum in (signal.SIGTERM, signal.SIGKILL):
                if process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(process.pid, signum)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(10)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # what is left of its group
            process.wait()
        if not self.loop.is_closed():
            self.loop.run_until_complete(self._disconnect())
            self.loop.close()
        shutil.rmtree(self.profile, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.log_path.unlink()

    def __enter__(self) -> Firefox:
        return self

    def __exit__(
        self,
        kind: Optional[type[BaseException]],
        error: Optional[BaseException],
        trace: Optional[TracebackType],
    ) -> None:
        self.close()

    # --- the protocol ---------------------------------------------------------------------

    async def _connect(self, port: int, timeout: float) -> None:
        self._http = aiohttp.ClientSession()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._ws = await self._http.ws_connect(
                    f"ws://127.0.0.1:{port}/session", max_msg_size=0, autoping=True
                )
                return
            except aiohttp.ClientError as error:
                if time.monotonic() > deadline:
                    raise FirefoxError(
                        f"cannot connect to Firefox on port {port}: {error}"
                    ) from None
                await asyncio.sleep(0.1)

    async def _disconnect(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()

    def command(self, method: str, timeout: float = COMMAND_TIMEOUT, **params: Any) -> Any:
        """Sends one command and returns its result; events that come first are kept in
        self.events. An error answer raises BiDiError."""
        self._next_id += 1
        try:
            return self.loop.run_until_complete(
                asyncio.wait_for(self._command(self._next_id, method, params), timeout)
            )
        except asyncio.TimeoutError:
            raise FirefoxError(f"{method}: no answer from Firefox within {timeout}s") from None

    async def _command(self, number: int, method: str, params: dict[str, Any]) -> Any:
        ws = self._ws
        if ws is None or ws.closed:
            raise FirefoxError(f"{method}: not connected to Firefox")
        await ws.send_str(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = await ws.receive()
            if message.type != aiohttp.WSMsgType.TEXT:
                raise FirefoxError(f"{method}: the connection ended ({message.type.name})")
            answer = json.loads(message.data)
            if answer.get("type") == "event":
                self.events.append(answer)
            elif answer.get("id") == number:
                if answer.get("type") == "error":
                    raise BiDiError(method, answer["error"], answer.get("message", ""))
                return answer["result"]
            elif answer.get("id") is None and answer.get("type") == "error":
                raise BiDiError(method, answer["error"], answer.get("message", ""))

    def subscribe(self, *events: str) -> None:
        self.command("session.subscribe", events=list(events))

    def preload(self, function: str) -> None:
        """A JavaScript function run in every page before the page's own scripts."""
        self.command("script.addPreloadScript", functionDeclaration=function)

    def tab(self) -> Tab:
        """The browser's first tab (it opens with one), or a new one after that."""
        if not self._first_tab_taken:
            self._first_tab_taken = True
            tree = self.command("browsingContext.getTree", maxDepth=0)
            return Tab(self, tree["contexts"][0]["context"])
        created = self.command("browsingContext.create", type="tab")
        return Tab(self, created["context"])


class Tab:
    """One top-level browsing context."""

    def __init__(self, firefox: Firefox, context: str) -> None:
        self.firefox = firefox
        self.context = context

    def navigate(self, url: str) -> None:
        """Loads url and returns when its load event has fired."""
        self.firefox.command(
            "browsingContext.navigate", context=self.context, url=url, wait="complete"
        )

    @property
    def url(self) -> str:
        return str(self.evaluate("location.href"))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page, as Python (objects become
        dicts, arrays lists); a script that throws raises ScriptError."""
        result = self.firefox.command(
            "script.evaluate",
            expression=expression,
            target={"context": self.context},
            awaitPromise=True,
            resultOwnership="none",
        )
        return self._result(result)

    def call(self, function: str, *args: Any) -> Any:
        """Calls a JavaScript function in the page with the given arguments."""
        result = self.firefox.command(
            "script.callFunction",
            functionDeclaration=function,
            arguments=[local_value(arg) for arg in args],
            target={"context": self.context},
            awaitPromise=True,
            resultOwnership="none",
        )
        return self._result(result)

    def _result(self, result: dict[str, Any]) -> Any:
        if result["type"] == "exception":
            details = result["exceptionDetails"]
            raise ScriptError(f"the page's script threw: {details.get('text', details)}")
        return python_value(result["result"])

    def wait_for(self, expression: str, timeout: float = 15.0) -> Any:
        """Evaluates expression until it is truthy, and returns that value. A page that is
        being replaced (a navigation) is waited for too."""
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            try:
                last = self.evaluate(expression)
                if last:
                    return last
            except BiDiError as error:  # the document went away under the script
                last = error
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} not true within {timeout}s (last: {last!r})")
            time.sleep(0.1)

    def text(self, selector: str) -> str:
        """The text of the first element that selector matches."""
        found = self.call(
            "(s) => { const e = document.querySelector(s); return e && e.textContent; }", selector
        )
        if found is None:
            raise FirefoxError(f"no element matches {selector!r} in {self.url}")
        return str(found)

    def count(self, selector: str) -> int:
        return int(self.call("(s) => document.querySelectorAll(s).length", selector))

    def element(self, selector: str) -> dict[str, Any]:
        """The first element that selector matches, scrolled into view, as a reference
        (its sharedId) for commands such as input.performActions."""
        found = self.call(
            "(selector) => { const e = document.querySelector(selector);"
            " if (e) e.scrollIntoView({block: 'center', inline: 'center'}); return e; }",
            selector,
        )
        if not isinstance(found, dict) or "sharedId" not in found:
            raise FirefoxError(f"no element matches {selector!r} in {self.url}")
        return {"sharedId": found["sharedId"]}

    def click(self, selector: str, timeout: float = 10.0) -> None:
        """A real mouse click (move, press, release) in the middle of the element. An element
        that the page replaces under the pointer (a live update) is looked up again."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._click(self.element(selector))
                return
            except BiDiError as error:
                if error.error not in STALE or time.monotonic() > deadline:
                    raise
            time.sleep(0.1)

    def _click(self, element: dict[str, Any]) -> None:
        origin = {"type": "element", "element": element}
        self.perform(
            {
                "type": "pointer",
                "id": "mouse",
                "parameters": {"pointerType": "mouse"},
                "actions": [
                    {"type": "pointerMove", "x": 0, "y": 0, "origin": origin},
                    {"type": "pointerDown", "button": 0},
                    {"type": "pointerUp", "button": 0},
                ],
            }
        )

    def press(self, key: str) -> None:
        """Presses and releases one key: a character, or a name in KEYS (Tab, Enter)."""
        value = KEYS.get(key, key)
        self.perform(
            {
                "type": "key",
                "id": "keyboard",
                "actions": [{"type": "keyDown", "value": value}, {"type": "keyUp", "value": value}],
            }
        )

    def perform(self, *sources: dict[str, Any]) -> None:
        try:
            self.firefox.command(
                "input.performActions", context=self.context, actions=list(sources)
            )
        finally:
            self.firefox.command("input.releaseActions", context=self.context)

    def set_viewport(self, width: int, height: int) -> None:
        self.firefox.command(
            "browsingContext.setViewport",
            context=self.context,
            viewport={"width": width, "height": height},
        )

    def screenshot(self, path: Path, full_page: bool = True) -> None:
        """A PNG of the whole document, or of the viewport only."""
        result = self.firefox.command(
            "browsingContext.captureScreenshot",
            context=self.context,
            origin="document" if full_page else "viewport",
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(result["data"]))

    def cookies(self) -> list[dict[str, Any]]:
        """The cookies this tab would send, with their values as plain strings."""
        result = self.firefox.command(
            "storage.getCookies", partition={"type": "context", "context": self.context}
        )
        cookies: list[dict[str, Any]] = result["cookies"]
        for cookie in cookies:
            if cookie["value"].get("type") == "string":
                cookie["value"] = cookie["value"]["value"]
        return cookies

    def close(self) -> None:
        self.firefox.command("browsingContext.close", context=self.context)


# --- values between Python and the page ----------------------------------------------------


def local_value(value: Any) -> dict[str, Any]:
    """A Python value as a BiDi LocalValue, for script arguments."""
    if value is None:
        return {"type": "null"}
    if isinstance(value, bool):
        return {"type": "boolean", "value": value}
    if isinstance(value, int):
        return {"type": "number", "value": value}
    if isinstance(value, float):
        if math.isnan(value):
            return {"type": "number", "value": "NaN"}
        if math.isinf(value):
            return {"type": "number", "value": "Infinity" if value > 0 else "-Infinity"}
        return {"type": "number", "value": value}
    if isinstance(value, str):
        return {"type": "string", "value": value}
    if isinstance(value, (list, tuple)):
        return {"type": "array", "value": [local_value(each) for each in value]}
    if isinstance(value, dict):
        return {"type": "object", "value": [[str(k), local_value(v)] for k, v in value.items()]}
    raise TypeError(f"cannot send {type(value).__name__} to the page")


def python_value(remote: dict[str, Any]) -> Any:
    """A BiDi RemoteValue as Python: primitives as themselves, arrays and sets as lists,
    objects and maps as dicts; nodes and other references stay as the remote value (a dict
    with its sharedId or handle)."""
    kind = remote.get("type")
    value = remote.get("value")
    if kind in ("undefined", "null"):
        return None
    if kind == "number":
        if isinstance(value, str):  # NaN, -0, Infinity, -Infinity
            return float(value.replace("Infinity", "inf"))
        return value
    if kind in ("string", "boolean"):
        return value
    if kind == "bigint":
        return int(str(value))
    if kind in ("array", "set") and isinstance(value, list):
        return [python_value(each) for each in value]
    if kind in ("object", "map") and isinstance(value, list):
        return {
            (k if isinstance(k, str) else json.dumps(python_value(k))): python_value(v)
            for k, v in value
        }
    if kind == "date":
        return value
    return remote
