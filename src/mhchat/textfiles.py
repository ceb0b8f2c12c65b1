"""Reading the text files a configuration names, with a message a host can act on."""

from __future__ import annotations

from pathlib import Path

from mhchat.errors import ConfigError


def read_config_text(path: Path, what: str) -> str:
    """The UTF-8 text of ``path``; a ``ConfigError`` naming ``what`` it is when unreadable."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{what} {path} does not exist."]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{what} {path} is not UTF-8 text."]) from None
    except OSError as exc:
        raise ConfigError([f"{what} {path} cannot be read: {exc.strerror}."]) from None
