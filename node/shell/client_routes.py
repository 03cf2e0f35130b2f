"""Which connection answers which client session, and the round's replies by connection.

A session's replies go back on the connection its last request came on (at most
``MAX_CLIENT_ROUTES`` sessions are remembered, least recent forgotten first). A session
that wrote only to the primary is answered on its principal's newest connection (the
sessions of a principal share one connection per replica), so it has f + 1 replies at
once instead of after its retransmission timeout. A round's replies leave as one frame
per connection (a ``ReplyBatch`` when there are several, split to stay under the client
frame limit).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from node.protocol.framing import reply_frames
from node.protocol.messages import Refused, Reply, Request
from transport import FrameTooLarge, LinkDown

log = logging.getLogger("bft.replica")

MAX_CLIENT_ROUTES = 100_000

Conn = Any  # transport.ClientConn, or anything with send_nowait/closed/principal


class ClientRoutes:
    """Session routes and the replies queued in the current round."""

    def __init__(
        self,
        me: int,
        principal_conn: Callable[[str], Conn | None],
        frame_limit: int,
        allows_replies: Callable[[], bool] = lambda: True,
    ) -> None:
        self.me = me
        self._principal_conn = principal_conn
        self._frame_limit = frame_limit
        self._allows_replies = allows_replies
        self._routes: OrderedDict[str, Conn] = OrderedDict()  # session -> its connection
        self._queued: dict[Conn, list[Reply]] = {}  # this round's replies, by connection

    def __len__(self) -> int:
        return len(self._routes)

    def remember(self, session: str, conn: Conn) -> None:
        """`session`'s latest request came on `conn`: its replies go there."""
        routes = self._routes
        routes[session] = conn
        routes.move_to_end(session)
        if len(routes) > MAX_CLIENT_ROUTES:
            routes.popitem(last=False)

    def refuse(self, conn: Conn, request: Request, reason: str) -> None:
        """Answer `request` at once with ``Refused(reason)`` (degraded, overloaded)."""
        refused = Refused(request.client, request.timestamp, self.me, reason)
        try:
            conn.send_nowait(refused.wire)
        except LinkDown:
            pass

    def reply(self, session: str, reply: Reply) -> None:
        """Queue a reply; the round's replies leave together (``send``)."""
        if not self._allows_replies():
            return
        conn = self._routes.get(session)
        if conn is None or conn.closed:
            conn = self._principal_conn(session.split("/", 1)[0])
            if conn is None:
                return
        queued = self._queued.get(conn)
        if queued is None:
            self._queued[conn] = [reply]
        else:
            queued.append(reply)

    def send(self) -> None:
        """One frame per connection for the round's replies; a connection that is down
        is forgotten for the sessions it carried."""
        if not self._queued:
            return
        queued_by_conn, self._queued = self._queued, {}
        for conn, queued in queued_by_conn.items():
            for frame in reply_frames(queued, self._frame_limit):
                try:
                    conn.send_nowait(frame)
                except LinkDown:
                    for reply in queued:
                        if self._routes.get(reply.client) is conn:
                            del self._routes[reply.client]
                    break
                except FrameTooLarge as exc:  # one reply above the limit: say so, go on
                    log.warning(
                        "event=reply_too_large principal=%s size=%d limit=%d",
                        conn.principal,
                        exc.size,
                        exc.limit,
                    )
