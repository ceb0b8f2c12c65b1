"""The safety step: crisis language, abuse and spam, on every post."""

from mhchat.facilitation.triage.classifier import Triage, TriageResult, Verdict
from mhchat.facilitation.triage.lexicon import CrisisLexicon, load_lexicon

__all__ = ["CrisisLexicon", "Triage", "TriageResult", "Verdict", "load_lexicon"]
