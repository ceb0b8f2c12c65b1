"""The page's content: posts and comments (threads two levels deep, as on Facebook), each change
sent as a ``feed`` webhook."""

from __future__ import annotations

from typing import Any

from mhchat.emulators.facebook.model import GraphFailure, Node, Person
from mhchat.emulators.facebook.webhooks import FacebookWebhooks


class FacebookContent(FacebookWebhooks):
    """Adding posts and comments, and the webhook change each one makes."""

    def _new_id(self) -> str:
        return str(next(self._ids))

    def _add_post(self, author: Person, message: str) -> Node:
        node = Node(f"{self.page.id}_{self._new_id()}", author, message, self.clock.now())
        self.nodes[node.id] = node
        self._emit(
            {
                "item": "status",
                "post_id": node.id,
                "verb": "add",
                "published": 1,
                "message": message,
            },
            node,
        )
        return node

    def _add_comment(self, author: Person, message: str, on: str) -> Node:
        target = self.nodes.get(on)
        if target is None or target.removed:
            raise GraphFailure(
                400,
                100,
                f"Unsupported post request. Object with ID '{on}' does not exist.",
                subcode=33,
            )
        if target.post_id is None:
            post_id, parent_id = target.id, target.id
        else:
            # Facebook threads are two levels deep: a reply to a reply joins the thread.
            post_id = target.post_id
            top = target if target.parent_id == post_id else self.nodes[target.parent_id or ""]
            parent_id = top.id
        node = Node(
            f"{post_id.split('_')[-1]}_{self._new_id()}",
            author,
            message,
            self.clock.now(),
            post_id=post_id,
            parent_id=parent_id,
        )
        self.nodes[node.id] = node
        self._emit(
            {
                "item": "comment",
                "comment_id": node.id,
                "post_id": post_id,
                "parent_id": parent_id,
                "verb": "add",
                "message": message,
            },
            node,
        )
        return node

    def _emit(self, value: dict[str, Any], node: Node, *, verb: str | None = None) -> None:
        change = {"from": {"id": node.author.id, "name": node.author.name}, **value}
        if verb is not None:
            change["verb"] = verb
        change["created_time"] = int(node.created.timestamp())
        self.deliver_changes([{"field": "feed", "value": change}])

    def _change_value(self, node: Node, verb: str) -> dict[str, Any]:
        if node.post_id is None:
            return {
                "item": "status" if verb == "edited" else "post",
                "post_id": node.id,
                "verb": verb,
                "published": 1,
            }
        return {
            "item": "comment",
            "comment_id": node.id,
            "post_id": node.post_id,
            "parent_id": node.parent_id,
            "verb": verb,
        }
