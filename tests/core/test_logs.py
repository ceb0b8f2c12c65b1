"""Logs never carry configured secrets or post text."""

from __future__ import annotations

import io

import structlog

from mhchat.logs import configure_logging


class TestRedaction:
    def test_secret_values_and_content_keys_are_redacted(self) -> None:
        out = io.StringIO()
        secret = "EAAB-page-token-0123456789"
        configure_logging(json=True, secrets=[secret], stream=out)
        log = structlog.get_logger("t")
        log.info("called", url=f"https://graph.example/me?access_token={secret}")
        log.info("posted", text="I feel awful tonight", token=secret)
        try:
            raise ValueError(f"bad token {secret}")
        except ValueError:
            log.exception("failed")
        written = out.getvalue()
        assert secret not in written
        assert "I feel awful tonight" not in written
        assert written.count("[redacted]") >= 4

    def test_post_text_can_be_allowed_explicitly(self) -> None:
        out = io.StringIO()
        configure_logging(json=True, allow_text=True, stream=out)
        structlog.get_logger("t").info("posted", text="visible on purpose")
        assert "visible on purpose" in out.getvalue()
