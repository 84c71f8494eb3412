"""`python -m bot ctl ...`: send one command to the running bot and print its answer.

The token is read from the same file the bot made (CONTROL_TOKEN_FILE or its default), the
address from CONTROL_HOST/CONTROL_PORT unless --url says otherwise. Exit codes: 0 done, 1 the
bot refused or failed the command, 2 bad usage or no bot to talk to (one line on stderr).
"""

from __future__ import annotations

import getpass
import json
import socket
import sys
import urllib.error
import urllib.request
from typing import Any

from db.url import resolve_url

from .token import TokenFileError, read_endpoint, read_token, token_file

TIMEOUT_SECONDS = 60.0  # a close-all may wait for the running cycle (bot.control.desk.LOCK_WAIT_SECONDS)


def actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"[:64]


def local_url(host: str, port: int) -> str:
    """The URL to reach a listener bound to `host` from this machine (a wildcard bind: loopback)."""
    host = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    return f"http://{host}:{port}"


def base_url(settings: Any, given: str | None, token_path: str) -> str:
    """--url, else CONTROL_HOST:CONTROL_PORT, else (port 0) the URL the running bot wrote beside its token."""
    if given:
        return given.rstrip("/")
    if settings.control_port:
        return local_url(settings.control_host, settings.control_port)
    return read_endpoint(token_path)


def send(url: str, token: str, action: str, options: dict[str, str]) -> tuple[int, dict[str, Any]]:
    data = None if action == "status" else json.dumps({"actor": actor(), **options}).encode("utf-8")
    request = urllib.request.Request(f"{url}/control/{action}", data=data, method="GET" if data is None else "POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                                              "X-Operator": actor()})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - our own URL
            return response.status, json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read().decode("utf-8"))
        except ValueError:
            return exc.code, {"error": exc.reason}


def main(args: Any, settings: Any) -> int:
    path = token_file(settings.control_token_file, resolve_url(settings.database_url))
    try:
        token = read_token(path)
        url = base_url(settings, args.url, path)
    except TokenFileError as exc:
        sys.stderr.write(f"error: {exc} (is the bot running with the same settings?)\n")
        return 2
    options = {k: v for k, v in (("symbol", getattr(args, "symbol", None)), ("strategy", getattr(args, "strategy", None)))
               if v}
    try:
        status, body = send(url, token, args.ctl_command, options)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        sys.stderr.write(f"error: no bot answering at {url}: {reason}\n")
        return 2
    sys.stdout.write(json.dumps(body, indent=2, default=str) + "\n")
    if status == 401:
        sys.stderr.write("error: the bot refused the control token\n")
        return 2
    return 0 if status == 200 else 1
