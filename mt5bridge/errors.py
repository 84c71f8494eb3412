"""Typed failures of the MT5 bridge client.

The bot reacts differently to each way a bridge call can fail, so each gets its own type:
a refused token is a configuration error (do not retry), a lost connection or nothing
listening is retried with a new client, a server-side error is a bug or bad input, and a
timeout is the dangerous one: the call may have run (an order may have executed) and must
be reconciled, never blindly resent. Everything subclasses :class:`BridgeError` so a caller
can still catch them all at once.
"""


class BridgeError(Exception):
    """Base class of every failure raised by the bridge client."""


class BridgeUnavailable(BridgeError):
    """Nothing accepted the TCP connection (server not running, wrong host/port)."""


class BridgeConnectionLost(BridgeError):
    """The connection dropped (server killed, network reset), or this client is already dead.

    A call that was in flight when the connection dropped has an unknown outcome.
    """


class BridgeTimeout(BridgeError):
    """No reply within the per-call timeout: the call's outcome is UNKNOWN.

    The server may still be running it; an order_send may have executed. Reconcile
    (positions/orders/deals by magic + comment) before deciding to send again.
    """


class BridgeAuthError(BridgeError):
    """The server refused our token (wrong or missing MT5_BRIDGE_TOKEN)."""


class BridgeTLSError(BridgeAuthError):
    """TLS failed: the server's certificate is not the trusted/pinned one, or one side speaks plain TCP.

    A configuration error like a wrong token (do not retry), or someone in between.
    """


class BridgeCallError(BridgeError):
    """The server (or the client, before sending) rejected the call: bad arguments,
    a name outside the allowlist, or an exception inside the backend.

    Nothing was executed when the rejection is about arguments; a backend exception is
    reported with its type and message only (no traceback crosses the wire).
    """

    def __init__(self, message: str, *, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind
