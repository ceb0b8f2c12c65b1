"""Pure pieces: X's reconnect schedule, rate-limit headers, the write window, the cost meter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mhchat_x.config import XSettings
from mhchat_x.cost import Charge, CostMeter
from mhchat_x.ratelimit import RateBook, WriteWindow, reset_of
from mhchat_x.stream import Backoff

NOW = datetime(2026, 1, 7, 20, 0, tzinfo=UTC)


class TestBackoff:
    def test_x_documented_schedule(self) -> None:
        """Network: now, then +250 ms to 16 s; HTTP: 5 s doubling to 320 s; 429: from 60 s."""
        backoff = Backoff(XSettings())
        network = [backoff.next_delay("network") for _ in range(70)]
        assert network[:4] == [0.0, 0.25, 0.5, 0.75]
        assert network[-1] == 16.0
        assert [backoff.next_delay("http") for _ in range(8)] == [
            5.0,
            10.0,
            20.0,
            40.0,
            80.0,
            160.0,
            320.0,
            320.0,
        ]
        assert [backoff.next_delay("rate") for _ in range(3)] == [60.0, 120.0, 240.0]
        backoff.reset()
        assert backoff.next_delay("network") == 0.0


class TestRateHeaders:
    def test_budgets_and_the_later_24_hour_reset(self) -> None:
        fifteen = int((NOW + timedelta(minutes=10)).timestamp())
        day = int((NOW + timedelta(hours=20)).timestamp())
        headers = {
            "x-rate-limit-limit": "100",
            "x-rate-limit-remaining": "57",
            "x-rate-limit-reset": str(fifteen),
            "x-user-limit-24hour-limit": "100",
            "x-user-limit-24hour-remaining": "0",
            "x-user-limit-24hour-reset": str(day),
        }
        book = RateBook()
        book.observe("create_tweet", headers)
        budgets = dict(book.budgets())
        assert budgets["create_tweet"].remaining == 57
        assert budgets["create_tweet:user_24h"].remaining == 0
        # The 15-minute window has room but the day is spent: the day's reset wins.
        assert reset_of(headers) == datetime.fromtimestamp(day, UTC)
        assert book.blocked_until("create_tweet", NOW) == datetime.fromtimestamp(day, UTC)
        later = datetime.fromtimestamp(day + 1, UTC)
        assert book.blocked_until("create_tweet", later) is None

    def test_the_shared_write_window(self) -> None:
        window = WriteWindow(2)
        window.record(NOW)
        window.record(NOW + timedelta(minutes=1))
        assert window.blocked_until(NOW + timedelta(minutes=2)) == NOW + timedelta(hours=3)
        assert window.blocked_until(NOW + timedelta(hours=3)) is None
        restored = WriteWindow(2)
        restored.load(window.dump())
        assert restored.budget(NOW + timedelta(hours=3)).remaining == 1


class TestCostMeter:
    def test_reads_are_billed_once_a_day(self) -> None:
        meter = CostMeter(1.0, billed=True)
        assert meter.charge_reads(NOW, ["1", "2"], ["u1"]) == 20_000
        assert meter.charge_reads(NOW, ["1", "2"], ["u1"]) == 0
        assert meter.charge_reads(NOW + timedelta(days=1), ["1"]) == 5_000
        assert meter.spent_microusd == 5_000  # a new UTC day starts from zero

    def test_cap_and_persistence(self) -> None:
        meter = CostMeter(0.03, billed=True)
        meter.charge(NOW, Charge.POST_CREATE)
        assert meter.refuse(NOW, Charge.POST_CREATE) is None
        meter.charge(NOW, Charge.POST_CREATE)
        capped = meter.refuse(NOW, Charge.POST_CREATE)
        assert capped is not None
        assert "$0.03" in capped.sentence()
        again = CostMeter(0.03, billed=True)
        again.load(meter.dump())
        assert again.spent_microusd == 30_000
        assert CostMeter(None, billed=False).charge(NOW, Charge.POST_CREATE_URL) == 0
