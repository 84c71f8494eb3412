"""Crash-safe JSON state files: a SIGKILL at any moment leaves either the old or the new state."""

import json
import os
import tempfile
from pathlib import Path

FORMAT_VERSION = 1


def save_state(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` atomically: temp file in the same directory, fsync, rename, fsync directory."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"format": FORMAT_VERSION, **state}, separators=(",", ":")).encode()
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    if os.name == "posix":  # directory fsync makes the rename itself durable; not possible on Windows
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def load_state(path: str | os.PathLike) -> dict | None:
    """The saved state, None if there is no file, or a one-line ValueError if it is unusable."""
    target = Path(path)
    try:
        raw = target.read_bytes()
    except FileNotFoundError:
        return None
    try:
        state = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"sim state file {target} is not valid JSON: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise ValueError(f"sim state file {target} has an unknown format")
    return state
