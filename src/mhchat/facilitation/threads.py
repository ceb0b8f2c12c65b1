"""Conversation grouping: reply-tree threads and the question each post answers.

Two groupings are kept per post:

- ``root``: the top of its reply tree on its platform (X conversation, Bluesky root ref,
  Facebook post of a comment). When the platform names the root, that is it; otherwise it is
  the parent's root, or the parent itself while the parent has not arrived yet.
- ``question``: the question of tonight's session the post belongs to, by the chat convention:
  its own tag ("A2", "A2:", "a2 -"; our own questions are tagged "Q2"), else the question of the
  post it quotes, else of its parent, else of its thread's root. So replying to or quoting Q2
  answers Q2, and a reply to an answer joins that answer's question. A question groups answers
  on all platforms.

Posts arrive in any order (a reply before its parent). ``apply_batch`` updates the grouping
incrementally against a ``LinkStore`` (SQL in production, memory in tests) and reaches the same
result as ``group`` computes from all posts at once, whatever the arrival order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

PostKey = tuple[str, str]
"""(platform, remote id)."""

_ANSWER = re.compile(r"^\s*(?:[@#]\S+\s+)*a(\d{1,2})(?!\w)", re.IGNORECASE)
_QUESTION = re.compile(r"^\s*(?:[@#]\S+\s+)*q(\d{1,2})(?!\w)", re.IGNORECASE)


def answer_tag(text: str) -> int | None:
    """The question number a participant's post says it answers ("A2", "a2 -", "A2:")."""
    m = _ANSWER.match(text)
    return int(m[1]) if m and int(m[1]) > 0 else None


def question_tag(text: str) -> int | None:
    """The number of one of our own question posts ("Q2: ...")."""
    m = _QUESTION.match(text)
    return int(m[1]) if m and int(m[1]) > 0 else None


def tag_for(text: str, *, is_own: bool) -> int | None:
    return question_tag(text) if is_own else answer_tag(text)


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """A post's place in the conversation."""

    key: PostKey
    parent: PostKey | None = None
    given_root: PostKey | None = None
    """The root the platform named, if it did."""
    quoted: PostKey | None = None
    tag: int | None = None
    root: PostKey | None = None
    """Resolved thread root (filled in by the grouping)."""
    question: int | None = None
    """Resolved question number (filled in by the grouping)."""

    # ``dataclasses.replace`` inspects the fields on every call: 1.6 times the cost of
    # building the copy directly, and the grouping copies every link of a batch twice.
    def resolved(self, root: PostKey | None, question: int | None) -> Link:
        """This link with its resolved root and question."""
        return Link(
            key=self.key,
            parent=self.parent,
            given_root=self.given_root,
            quoted=self.quoted,
            tag=self.tag,
            root=root,
            question=question,
        )


def _questions(
    links: Mapping[PostKey, Link], outside: Mapping[PostKey, int | None]
) -> dict[PostKey, int | None]:
    """Resolve the question of every link: its own tag, else that of the post it quotes, its
    parent, its root (in that order). ``outside`` holds resolved questions of other posts."""
    memo: dict[PostKey, int | None] = {}

    def q_of(key: PostKey, seen: frozenset[PostKey]) -> int | None:
        if key in memo:
            return memo[key]
        link = links[key]
        found = link.tag
        if found is None:
            for ref in (link.quoted, link.parent, link.root):
                if ref is None or ref == key or ref in seen:
                    continue
                value = q_of(ref, seen | {key}) if ref in links else outside.get(ref)
                if value is not None:
                    found = value
                    break
        memo[key] = found
        return found

    return {key: q_of(key, frozenset()) for key in links}


def group(links: Iterable[Link]) -> dict[PostKey, Link]:
    """The grouping computed from every post at once: the reference the incremental path meets."""
    by_key = {link.key: link for link in links}
    roots: dict[PostKey, PostKey] = {}

    def root_of(key: PostKey, seen: frozenset[PostKey]) -> PostKey:
        if key in roots:
            return roots[key]
        link = by_key[key]
        if link.given_root is not None:
            found = link.given_root
        elif link.parent is None:
            found = key
        elif link.parent not in by_key or link.parent in seen:
            found = link.parent
        else:
            found = root_of(link.parent, seen | {key})
        roots[key] = found
        return found

    resolved = {k: v.resolved(root_of(k, frozenset()), v.question) for k, v in by_key.items()}
    questions = _questions(resolved, {})
    return {k: v.resolved(v.root, questions[k]) for k, v in resolved.items()}


class LinkStore(Protocol):
    """Where the grouping lives. Implementations: ``MemoryLinks`` and the SQL store."""

    async def get(self, keys: set[PostKey]) -> dict[PostKey, Link]:
        """Stored links for those keys that exist."""
        ...

    async def dependents(self, keys: set[PostKey]) -> list[Link]:
        """Stored links whose parent, quoted post or current root is one of ``keys``."""
        ...

    async def put(self, links: list[Link]) -> None:
        """Save the resolved root, tag and question of each link."""
        ...


async def apply_batch(new: list[Link], store: LinkStore) -> list[Link]:
    """Group newly arrived posts and update the posts that were waiting for them.

    Returns every link whose grouping was written (the new ones and the updated ones).
    """
    fresh = {link.key: link for link in new}
    wanted = {link.parent for link in new if link.parent and link.given_root is None}
    known = await store.get({k for k in wanted if k is not None and k not in fresh})
    roots: dict[PostKey, PostKey] = {}

    def root_of(key: PostKey, seen: frozenset[PostKey]) -> PostKey:
        if key in roots:
            return roots[key]
        link = fresh[key]
        if link.given_root is not None:
            found = link.given_root
        elif link.parent is None:
            found = key
        elif link.parent in fresh and link.parent not in seen:
            found = root_of(link.parent, seen | {key})
        elif link.parent in known:
            found = known[link.parent].root or link.parent
            if found in fresh and found not in seen and found != key:
                # The parent's provisional root arrives in this same batch: follow it.
                found = root_of(found, seen | {key})
        else:
            found = link.parent
        roots[key] = found
        return found

    updated: dict[PostKey, Link] = {
        k: v.resolved(root_of(k, frozenset()), v.question) for k, v in fresh.items()
    }
    for waiting in await store.dependents(set(fresh)):
        if waiting.key in fresh:
            continue
        root = waiting.root
        if root in fresh:
            # Its provisional root has arrived: follow it up to the real (or next unknown) root.
            root = updated[root].root
        updated[waiting.key] = waiting.resolved(root, waiting.question)

    # Questions follow quotes, parents and roots; when one changes, the posts that refer to
    # it are fetched and resolved again, until nothing changes.
    stored_q: dict[PostKey, int | None] = {
        k: v.question for k, v in updated.items() if k not in fresh
    }
    outside: dict[PostKey, int | None] = {}
    expanded: set[PostKey] = set(fresh)
    while True:
        refs = {
            r
            for link in updated.values()
            for r in (link.quoted, link.parent, link.root)
            if r is not None
        }
        missing = {r for r in refs if r not in updated and r not in outside}
        if missing:
            found = await store.get(missing)
            outside.update({k: found[k].question if k in found else None for k in missing})
        questions = _questions(updated, outside)
        changed = {
            k
            for k, q in questions.items()
            if k not in expanded and (k in fresh or q != stored_q.get(k))
        }
        updated = {k: v.resolved(v.root, questions[k]) for k, v in updated.items()}
        if not changed:
            break
        expanded |= changed
        for waiting in await store.dependents(changed):
            if waiting.key not in updated:
                updated[waiting.key] = waiting
                stored_q[waiting.key] = waiting.question
    result = list(updated.values())
    await store.put(result)
    return result


class MemoryLinks:
    """An in-memory ``LinkStore`` (tests, and the ``triage``-style offline tools)."""

    def __init__(self) -> None:
        self.links: dict[PostKey, Link] = {}

    async def get(self, keys: set[PostKey]) -> dict[PostKey, Link]:
        return {k: self.links[k] for k in keys if k in self.links}

    async def dependents(self, keys: set[PostKey]) -> list[Link]:
        return [
            link
            for link in self.links.values()
            if link.parent in keys or link.quoted in keys or link.root in keys
        ]

    async def put(self, links: list[Link]) -> None:
        for link in links:
            self.links[link.key] = link
