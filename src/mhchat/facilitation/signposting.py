"""The signposting reply prepared for a post that may show a person in crisis."""

from __future__ import annotations

from mhchat.actions import Purpose, Reply
from mhchat.events import Post
from mhchat.facilitation.formatting import limit_for
from mhchat.facilitation.settings import FacilitationSettings
from mhchat.facilitation.templates import Templates
from mhchat.facilitation.triage.classifier import TriageResult
from mhchat.facilitation.triage.signposting import help_lines_text, regions_for
from mhchat.ledger import Decision, Mode


def signposting_decision(
    post: Post,
    verdict: TriageResult,
    *,
    settings: FacilitationSettings,
    templates: Templates,
    modes: dict[Purpose, Mode],
) -> Decision:
    """The prepared reply for a post in possible crisis: always for a person to approve."""
    safety = settings.safety
    regions = regions_for(post.text, safety.regions, {line.region for line in safety.help_lines})
    text = templates.render_signposting(
        handle=post.author.handle,
        hashtag=settings.hashtag,
        help_lines=help_lines_text(safety.help_lines, regions),
    )
    limit = limit_for(post.platform)
    size = limit.measure(text)
    too_long = (
        f"; the text is {size} {limit.unit} and {limit.name} allows {limit.maximum}:"
        " shorten it before approving"
        if size > limit.maximum
        else ""
    )
    mode = Mode.DRY_RUN if modes.get(Purpose.SIGNPOSTING) is Mode.DRY_RUN else Mode.APPROVE_FIRST
    return Decision(
        action=Reply(
            key=f"signpost:{post.platform}:{post.remote_id}",
            platform=post.platform,
            purpose=Purpose.SIGNPOSTING,
            text=text,
            parent=post.ref,
            root=post.reply_root or post.ref,
            parent_author_id=post.author.author_id,
            parent_mentions_host=post.mentions_host,
        ),
        reason=(
            f"{verdict.reason}; signposting reply prepared"
            f" ({', '.join(r.upper() for r in regions)})"
            " for a facilitator to approve; the post stays visible and is never reposted"
            f"{too_long}"
        ),
        mode=mode,
    )
