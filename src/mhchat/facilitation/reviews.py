"""Reminders that safety data needs a person's review: help-line numbers and the lexicon.

These are warnings for the host (shown by ``mhchat triage`` and available to the dashboard),
never a reason to stop the service.
"""

from __future__ import annotations

from datetime import date

from mhchat.facilitation.settings import SafetySettings, stale_help_lines
from mhchat.facilitation.triage.lexicon import CrisisLexicon


def review_warnings(safety: SafetySettings, lexicon: CrisisLexicon, today: date) -> list[str]:
    warnings = stale_help_lines(safety, today)
    if lexicon.review_due(today):
        warnings.append(
            f"The crisis lexicon ({lexicon.source}) was last reviewed on"
            f" {lexicon.reviewed.isoformat()}, more than {lexicon.review_every_days} days ago:"
            " review its phrases and update [meta] reviewed."
        )
    return warnings
