"""Meta's data-deletion callback: a signed_request in, a forget event and a status URL out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from mhchat.events import PersonForgetRequested
from mhchat.testing import RecordingSink

from .conftest import Rig, RigFactory, content


def deletion_url(rig: Rig) -> str:
    return rig.webhook_url + "/data-deletion"


def forget_events(rig: Rig) -> list[PersonForgetRequested]:
    return [e for e in content(rig.sink) if isinstance(e, PersonForgetRequested)]


async def post_signed(rig: Rig, payload: bytes) -> int:
    """POST a signed request over ``payload`` (signed with the app secret); its status."""
    encoded = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    digest = hmac.new(rig.emulator.app_secret.encode(), encoded.encode(), hashlib.sha256)
    signature = base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")
    resp = await rig.client.post(
        "/webhooks/facebook/data-deletion", data={"signed_request": f"{signature}.{encoded}"}
    )
    return resp.status


class TestDataDeletion:
    async def test_valid_request_asks_the_core_to_forget_and_answers_url_and_code(
        self, rig: Rig
    ) -> None:
        status, answer = await rig.emulator.request_data_deletion(deletion_url(rig), "218471")
        assert status == 200
        assert set(answer) == {"url", "confirmation_code"}
        code = answer["confirmation_code"]
        assert code.isalnum()
        assert answer["url"].startswith(rig.webhook_url + "/data-deletion/status?code=")
        (event,) = forget_events(rig)
        assert event.author_id == "218471"
        assert event.platform == "facebook"
        assert event.confirmation_code == code
        assert event.requested_at.tzinfo is not None

        page = await rig.client.get(answer["url"].removeprefix(str(rig.client.make_url(""))))
        assert page.status == 200
        text = await page.text()
        assert code in text
        assert "received" in text
        assert "218471" not in text

    async def test_the_same_request_gets_the_same_code(self, rig: Rig) -> None:
        signed = rig.emulator.signed_request("218471")
        codes = []
        for _ in range(2):
            resp = await rig.client.post(
                "/webhooks/facebook/data-deletion", data={"signed_request": signed}
            )
            assert resp.status == 200
            codes.append((await resp.json())["confirmation_code"])
        assert codes[0] == codes[1]

    async def test_public_url_setting_builds_the_status_url(self, make_rig: RigFactory) -> None:
        rig = await make_rig(settings={"public_url": "https://chat.example.org"})
        _, answer = await rig.emulator.request_data_deletion(deletion_url(rig), "42")
        assert answer["url"].startswith(
            "https://chat.example.org/webhooks/facebook/data-deletion/status?code="
        )

    async def test_forged_or_malformed_requests_are_refused(self, rig: Rig) -> None:
        forged = rig.emulator.signed_request("218471", app_secret="someone-else")
        signature, _ = rig.emulator.signed_request("1").split(".")
        other = base64.urlsafe_b64encode(
            json.dumps({"algorithm": "HMAC-SHA256", "user_id": "2"}).encode()
        ).decode()
        for signed, expected in (
            (forged, 403),
            (f"{signature}.{other}", 403),  # payload swapped under a valid signature
            ("not-a-signed-request", 403),
            ("@@@.###", 403),
            (None, 400),
        ):
            data = {} if signed is None else {"signed_request": signed}
            resp = await rig.client.post("/webhooks/facebook/data-deletion", data=data)
            assert resp.status == expected, signed
        assert forget_events(rig) == []

    async def test_a_form_of_many_fields_is_400(self, rig: Rig) -> None:
        signed = rig.emulator.signed_request("218471")
        fields = "&".join(f"f{i}=1" for i in range(11))
        resp = await rig.client.post(
            "/webhooks/facebook/data-deletion",
            data=f"{fields}&signed_request={signed}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert resp.status == 400
        assert forget_events(rig) == []

    async def test_a_user_id_that_is_not_text_is_refused(self, rig: Rig) -> None:
        # A lone surrogate escape: the standard parser takes it, nothing can store it.
        payload = b'{"algorithm": "HMAC-SHA256", "user_id": "\\ud800"}'
        assert await post_signed(rig, payload) == 403
        assert forget_events(rig) == []

    async def test_wrong_algorithm_is_refused(self, rig: Rig) -> None:
        payload = json.dumps({"algorithm": "HMAC-SHA1", "user_id": "3"}).encode()
        assert await post_signed(rig, payload) == 403
        assert forget_events(rig) == []

    async def test_unknown_code_status_is_404(self, rig: Rig) -> None:
        for code in ("0" * 20, "not-a-code", ""):
            resp = await rig.client.get(
                "/webhooks/facebook/data-deletion/status", params={"code": code}
            )
            assert resp.status == 404

    async def test_full_bus_is_503(self, make_rig: RigFactory) -> None:
        rig = await make_rig(sink=RecordingSink(capacity=0))
        status, _ = await rig.emulator.request_data_deletion(deletion_url(rig), "218471")
        assert status == 503
        assert forget_events(rig) == []
