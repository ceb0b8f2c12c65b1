"""mhchat: runs a recurring mental-health hashtag chat across social platforms."""

__version__ = "0.1.0"
