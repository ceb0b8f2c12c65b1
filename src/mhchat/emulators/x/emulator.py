"""The X emulator itself: the aiohttp app with its routes, and participants acting on X."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from mhchat.emulators.common import ConnectionDropped, serve
from mhchat.emulators.x.model import _HEADERS, Handler, RecordedRequest, XApiError
from mhchat.emulators.x.routes import XRoutes


class XEmulator(XRoutes):
    """An in-memory X. ``await start()`` returns the base URL to use as ``api_base``."""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        routes: list[tuple[str, str, str, set[str], Handler]] = [
            ("GET", "/2/tweets/search/stream", "stream_connect", {"app"}, self._stream),
            ("GET", "/2/tweets/search/stream/rules", "rules_read", {"app"}, self._rules_get),
            ("POST", "/2/tweets/search/stream/rules", "rules_write", {"app"}, self._rules_post),
            ("GET", "/2/tweets/search/recent", "search", {"app", "user"}, self._search),
            ("GET", "/2/tweets", "lookup", {"app", "user"}, self._lookup),
            ("POST", "/2/tweets", "create_tweet", {"user"}, self._create),
            ("GET", "/2/users/me", "me", {"user"}, self._me),
            ("GET", "/2/users/{id}/tweets", "user_tweets", {"app", "user"}, self._timeline),
            ("POST", "/2/users/{id}/retweets", "retweet", {"user"}, self._retweet),
            (
                "DELETE",
                "/2/users/{id}/retweets/{tweet_id}",
                "unretweet",
                {"user"},
                self._unretweet,
            ),
        ]
        for method, path, endpoint, allowed, handler in routes:
            app.router.add_route(method, path, self._wrap(endpoint, allowed, handler))
        app.router.add_post("/2/oauth2/token", self._token)
        self._stopping.clear()
        self._runner, self.base_url = await serve(app, host, port)
        return self.base_url

    async def stop(self) -> None:
        self._stopping.set()
        self.disconnect_streams()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _wrap(self, endpoint: str, allowed: set[str], handler: Handler) -> Any:
        async def route(request: web.Request) -> web.StreamResponse:
            status = 200
            auth = "none"
            self._arrivals[(endpoint, request.method)] += 1
            try:
                fault = self._take_fault(endpoint)
                if fault is not None:
                    await self._fault_before(request, fault)
                principal = self._authorize(request, allowed)
                auth = principal.kind
                headers = self._count(endpoint, principal)
                body: dict[str, Any] = {}
                if request.method == "POST" and request.can_read_body:
                    raw = await request.read()
                    try:
                        body = orjson.loads(raw) if raw else {}
                    except orjson.JSONDecodeError as exc:
                        raise XApiError(
                            400,
                            "Invalid Request",
                            "Request body is not valid JSON.",
                            "invalid-request",
                        ) from exc
                request[_HEADERS] = headers
                response = await handler(request, principal, body)
                status = response.status
                if fault is not None and fault.kind == "hang_after":
                    await self._hang()
            except XApiError as exc:
                status = exc.status
                return exc.response()
            except ConnectionDropped:
                status = 0
                return web.Response(status=500)  # never reaches the client: it gave up
            else:
                return response
            finally:
                self.requests.append(RecordedRequest(endpoint, request.method, auth, status))

        return route

    def post_tweet(
        self,
        author: str,
        text: str,
        reply_to: str | None = None,
        quote: str | None = None,
    ) -> str:
        """A participant posts (or replies / quotes); it reaches the stream and search."""
        tweet = self._make_tweet(self.user_id(author), text, reply_to=reply_to, quote=quote)
        self._broadcast(tweet)
        return tweet.id

    def retweet_as(self, author: str, tweet_id: str) -> str:
        rt = self._make_retweet(self.user_id(author), self.tweets[tweet_id])
        self._broadcast(rt)
        return rt.id

    def edit_tweet(self, tweet_id: str, text: str) -> str:
        """The author edits a post: a new id sharing the edit history, on the stream too."""
        old = self.tweets[tweet_id]
        new = self._make_tweet(old.author_id, text, history=[*old.edit_history])
        old.superseded = True
        for tid in new.edit_history:
            self.tweets[tid].edit_history = list(new.edit_history)
        self._broadcast(new)
        return new.id

    def delete_tweet(self, tweet_id: str) -> None:
        self.tweets[tweet_id].deleted = True
