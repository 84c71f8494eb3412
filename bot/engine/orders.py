"""Order identity and the send path: persist the intent, send once, record exactly one outcome.

MT5 has no broker-side idempotency key, so every order carries a short client order id at the
start of its `comment` (next to our `magic`): that is how an order whose reply was lost is found
again at the broker, instead of being sent a second time.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from db import OrderIntent, OrderOutcome, Repository
from mt5bridge import constants as mt5

from ..gateway import (
    BrokerUnavailable,
    ConnectionLost,
    Gateway,
    GatewayError,
    NotExpressible,
    OrderRejected,
    OrderRequest,
    OutcomeUnknown,
    TradingDisabled,
)
from .execution import Decision, ExecutionQuality, SendClock

log = logging.getLogger("bot.orders")

_CLIENT_ID = re.compile(r"^(tw[0-9a-f]{10})\b")
COMMENT_LIMIT = 31  # MT5 truncates order comments at 31 characters
#: Rejections that say only "not at this price": nothing executed, the same order may go again.
REQUOTE_RETCODES = frozenset({mt5.TRADE_RETCODE_REQUOTE, mt5.TRADE_RETCODE_PRICE_CHANGED,
                              mt5.TRADE_RETCODE_PRICE_OFF})
_RETCODE_NAMES = {value: name.removeprefix("TRADE_RETCODE_") for name, value in vars(mt5).items()
                  if name.startswith("TRADE_RETCODE_") and isinstance(value, int)}


def outcome_text(status: str, retcode: int | None) -> str:
    """What the outcome log line says: a rejection names its retcode (NO_MONEY needs another fix than
    MARKET_CLOSED), a requote that ended the order says it was a requote."""
    if status != "rejected":
        return status
    if retcode is None:
        return "rejected, no retcode"
    kind = "rejected as a requote" if retcode in REQUOTE_RETCODES else "rejected"
    return f"{kind}, retcode {retcode} {_RETCODE_NAMES.get(retcode, 'UNKNOWN')}"


def new_client_order_id() -> str:
    return "tw" + secrets.token_hex(5)


def order_comment(client_order_id: str, strategy: str) -> str:
    return f"{client_order_id} {strategy}"[:COMMENT_LIMIT]


def client_order_id_from(comment: str) -> str | None:
    match = _CLIENT_ID.match(comment or "")
    return match.group(1) if match else None


@dataclass(frozen=True)
class SendOutcome:
    client_order_id: str
    status: str  # filled | rejected | unknown | not_sent (| queued | expired from the order flow)
    retcode: int | None
    fill_price: Decimal | None
    broker_order: int | None
    quality: ExecutionQuality | None = None  # the send's execution figures (None: nothing was sent)


class OrderSender:
    """Sends market orders so that none is lost and none is sent twice."""

    def __init__(self, gateway: Gateway, repo: Repository, account: str, magic: int, deviation: int,
                 requote_retries: int = 0, on_trading_disabled: Callable[[str], None] | None = None,
                 point_of: Callable[[str], Decimal | None] | None = None):
        self.gateway = gateway
        self.point_of = point_of or (lambda symbol: None)  # a symbol's point, for slippage in points
        self.repo = repo
        self.account = account
        self.magic = magic
        self.deviation = deviation
        self.requote_retries = requote_retries
        #: Told when the terminal refuses algorithmic trading (-8): the engine halts new orders.
        self.on_trading_disabled = on_trading_disabled
        #: Told when an order is left without a final outcome (unknown, or the send raised): the
        #: engine then looks it up at the broker (bot.engine.replay), and only then.
        self.on_unsettled: Callable[[], None] | None = None

    def _unsettled(self) -> None:
        if self.on_unsettled is not None:
            self.on_unsettled()

    def send(
        self,
        *,
        now: datetime,
        correlation_id: str,
        signal_id: int | None,
        symbol: str,
        strategy: str,
        side: str,
        purpose: str,
        volume: Decimal,
        price: Decimal,
        sl: Decimal | None = None,
        tp: Decimal | None = None,
        position_ticket: int | None = None,
        client_order_id: str | None = None,
        decided_price: Decimal | None = None,
        decided_at: datetime | None = None,
        reprice: Callable[[], Decimal | None] | None = None,
        decision: Decision | None = None,
        quote_at_send: Decimal | None = None,
    ) -> SendOutcome:
        """Record the intent, send once at `price`, record the outcome.

        A queued order keeps its `client_order_id` and the intent records what was decided
        (`decided_price`, `decided_at`), so repeating the intent after a crash is a no-op.
        Status "not_sent" means nothing left the process (no outcome is recorded: the caller
        keeps the order queued and later sends or expires it under the same id).

        A requote (10004/10020/10021) means the broker did not execute the request: `reprice()`
        gives the price to resend at under the same client order id (None: the decision no longer
        holds), up to `requote_retries` times; then the rejection is the outcome.

        Execution quality (bot.engine.execution) is measured around the send and stored with the
        outcome: `decision` stamps when the strategy decided, `quote_at_send` is the market price
        read right before sending (default: `price`).
        """
        client_order_id = client_order_id or new_client_order_id()
        comment = order_comment(client_order_id, strategy)
        # The intent is durable before anything leaves the process: a crash after this line
        # leaves an order we can look up, never one we do not know about.
        self.repo.record_order_intent(
            OrderIntent(
                client_order_id=client_order_id,
                account=self.account,
                correlation_id=correlation_id,
                signal_id=signal_id,
                symbol=symbol,
                strategy=strategy,
                side=side,
                purpose=purpose,
                position_ticket=position_ticket,
                volume=volume,
                requested_price=decided_price if decided_price is not None else price,
                sl=sl,
                tp=tp,
                deviation=self.deviation,
                magic=self.magic,
                comment=comment,
                created_at=decided_at or now,
            )
        )
        # Group commit (db.database): everything decided so far, this intent included, is made
        # durable here, once, right before the order can leave the process.
        commit = getattr(self.repo, "commit", None)
        if commit is not None:
            commit()
        # Logged before the send: if the process dies while the request is in flight, the log still
        # holds the client order id that the broker's history will show.
        log.info(
            "order intent %s %s %s %s",
            purpose,
            side,
            volume,
            symbol,
            extra={"client_order_id": client_order_id, "symbol": symbol, "strategy": strategy, "side": side,
                   "volume": str(volume), "price": str(price), "purpose": purpose},
        )
        request = OrderRequest(
            symbol=symbol,
            side=side,
            volume=volume,
            price=price,
            sl=sl,
            tp=tp,
            deviation=self.deviation,
            magic=self.magic,
            comment=comment,
            position=position_ticket,
        )
        retcode: int | None = None
        fill_price: Decimal | None = None
        broker_order = broker_deal = None
        fill_volume = None
        requotes = 0
        clock = SendClock(decision, quote_at_send if quote_at_send is not None else price,
                          getattr(self.gateway, "utc_now", None))
        try:
            while True:
                try:
                    clock.sending()
                    result = self.gateway.order_send(request)
                except OrderRejected as exc:
                    fresh = (reprice() if exc.retcode in REQUOTE_RETCODES and requotes < self.requote_retries
                             and reprice is not None else None)
                    if fresh is None:
                        raise
                    requotes += 1
                    clock.requoted(fresh)
                    log.info("order %s requoted (%s): resending at %s", client_order_id, exc.retcode, fresh,
                             extra={"client_order_id": client_order_id, "symbol": symbol, "retcode": exc.retcode,
                                    "price": str(fresh), "attempt": requotes + 1})
                    request = replace(request, price=fresh)
                    continue
                break
            status, retcode, message = "filled", result.retcode, result.comment or "done"
            fill_price, fill_volume = result.price, result.volume
            broker_order, broker_deal = result.order, result.deal
        except OrderRejected as exc:
            status, retcode, message = "rejected", exc.retcode, exc.message or str(exc)
        except NotExpressible as exc:
            # Off the symbol's grid (checked before sending): nothing left the process, and it
            # never can as asked, so it is final.
            status, message = "rejected", f"not sent: {exc}"
        except TradingDisabled as exc:
            log.error("order %s %s %s not sent: %s", purpose, side, symbol, exc,
                      extra={"client_order_id": client_order_id, "outcome": "not_sent"})
            if self.on_trading_disabled is not None:
                self.on_trading_disabled(str(exc))
            return SendOutcome(client_order_id, "not_sent", None, None, None)
        except BrokerUnavailable as exc:
            log.warning("order %s %s %s not sent: %s", purpose, side, symbol, exc,
                        extra={"client_order_id": client_order_id, "outcome": "not_sent"})
            return SendOutcome(client_order_id, "not_sent", None, None, None)
        except (OutcomeUnknown, ConnectionLost) as exc:
            status, message = "unknown", str(exc)
        except GatewayError as exc:
            status, message = "unknown", f"unexpected gateway error: {exc}"
        except BaseException:
            self._unsettled()  # its intent stays pending
            raise
        if status == "unknown":
            self._unsettled()
        quality = clock.result(side, self.point_of(symbol), decided_price if decided_price is not None else price,
                               fill_price if status == "filled" else None)
        self.repo.record_order_outcome(
            OrderOutcome(
                client_order_id=client_order_id,
                status=status,
                retcode=retcode,
                broker_order=broker_order,
                broker_deal=broker_deal,
                fill_price=fill_price,
                fill_volume=fill_volume,
                message=message[:500],
                resolved_at=now,
                **(quality.columns() if quality is not None else {}),
            )
        )
        # A rejection is a WARNING: "Errors and warnings" must show what RejectedOrdersBurst points at.
        log.log(
            logging.WARNING if status in ("unknown", "rejected") else logging.INFO,
            "order %s %s %s %s: %s",
            purpose,
            side,
            volume,
            symbol,
            outcome_text(status, retcode),
            extra={
                "client_order_id": client_order_id,
                "symbol": symbol,
                "strategy": strategy,
                "side": side,
                "volume": str(volume),
                "price": str(price),
                "outcome": status,
                "retcode": retcode,
                "ticket": broker_order,
                "fill_price": str(fill_price) if fill_price is not None else None,
                "slippage_points": _text(quality and quality.slippage_decision_points),
                "requotes": requotes,
            },
        )
        return SendOutcome(client_order_id, status, retcode, fill_price, broker_order, quality)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
