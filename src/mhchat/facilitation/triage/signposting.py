"""Region-aware signposting: which help lines a prepared reply lists.

The service cannot know where a person is. A post that names a place ("in the UK", "NHS",
"America") gets that region's lines; any other post gets the lines of every region in
``[safety] regions`` (UK and US by default, the chat's audiences). A facilitator reads and
may edit the reply before it goes out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mhchat.facilitation.settings import HelpLine

REGION_HINTS: dict[str, tuple[str, ...]] = {
    "uk": (
        "uk",
        "u.k.",
        "united kingdom",
        "england",
        "scotland",
        "wales",
        "northern ireland",
        "britain",
        "nhs",
        "london",
    ),
    "us": ("usa", "u.s.", "u.s.a.", "united states", "america", "the states"),
    "ie": ("ireland", "dublin", "eire"),
    "ca": ("canada",),
    "au": ("australia",),
}
_HINT_PATTERNS = {
    region: re.compile("|".join(rf"(?<!\w){re.escape(h)}(?!\w)" for h in hints), re.IGNORECASE)
    for region, hints in REGION_HINTS.items()
}


def regions_for(text: str, defaults: Sequence[str], configured: set[str]) -> tuple[str, ...]:
    named = tuple(
        r for r, pattern in _HINT_PATTERNS.items() if r in configured and pattern.search(text)
    )
    return named or tuple(defaults)


def help_lines_text(lines: Sequence[HelpLine], regions: Sequence[str]) -> str:
    parts = []
    for region in regions:
        entries = [f"{line.name}, {line.contact}" for line in lines if line.region == region]
        if entries:
            parts.append(f"{region.upper()}: " + "; ".join(entries))
    return ". ".join(parts)
