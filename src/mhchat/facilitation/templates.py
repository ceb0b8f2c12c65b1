"""Reply templates the host edits (welcome, signposting), with their placeholders checked."""

from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mhchat.errors import ConfigError
from mhchat.textfiles import read_config_text

PLACEHOLDERS = frozenset({"handle", "hashtag", "help_lines"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Templates:
    welcome: str
    signposting: str

    def render_welcome(self, *, handle: str, hashtag: str) -> str:
        return self.welcome.format_map({"handle": handle, "hashtag": hashtag, "help_lines": ""})

    def render_signposting(self, *, handle: str, hashtag: str, help_lines: str) -> str:
        return self.signposting.format_map(
            {"handle": handle, "hashtag": hashtag, "help_lines": help_lines}
        )


def _check(name: str, text: object, source: str) -> list[str]:
    if not isinstance(text, str) or not text.strip():
        return [f"{source}: {name} must be a text in quotes."]
    try:
        found = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    except ValueError:
        return [f"{source}: {name} has an unmatched brace; write {{{{ for a brace."]
    return [
        f"{source}: {name} uses {{{field}}}; the placeholders are {{handle}}, {{hashtag}} and"
        f" {{help_lines}}."
        for field in sorted(found - PLACEHOLDERS)
    ]


def load_templates(path: Path | None = None) -> Templates:
    if path is None:
        text = (
            resources.files("mhchat.facilitation.data")
            .joinpath("templates.toml")
            .read_text("utf-8")
        )
        source = "<packaged templates>"
    else:
        text, source = read_config_text(path, "The templates file"), str(path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source} is not valid TOML: {exc}."]) from None
    problems = _check("welcome", doc.get("welcome"), source) + _check(
        "signposting", doc.get("signposting"), source
    )
    if "help_lines" not in str(doc.get("signposting", "")):
        problems.append(
            f"{source}: signposting must include {{help_lines}} so the numbers are in the reply."
        )
    if problems:
        raise ConfigError(problems)
    return Templates(welcome=str(doc["welcome"]), signposting=str(doc["signposting"]))
