"""Transcripts: four formats, grouped by question and thread, anonymised, no deleted posts."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
from pathlib import Path

import orjson
import pytest

from mhchat import transcript
from mhchat.commands import transcript as command
from mhchat.facilitation import views
from mhchat.transcript import Format

from .conftest import Rig, now_post


async def chat(rig: Rig) -> str:
    """A small session; returns its id."""
    await rig.inject(now_post("h1", author="host", text="Q1: How are you? #MHChat", is_own=True))
    await rig.inject(now_post("a1", author="ann", text="A1 doing ok, thanks @bob #MHChat"))
    await rig.inject(
        now_post("b1", author="bob", text="glad to hear it @ann #MHChat", parent="a1")
    )
    await rig.inject(now_post("c1", author="cat", text="A2 slow week, but here #MHChat"))
    await rig.inject(now_post("e1", author="eve", text="=1+1 is all I can manage #MHChat"))
    await rig.inject(now_post("d1", author="dan", text="A2 gone soon quokka #MHChat"))
    await rig.delete("d1")
    async with rig.runtime.require_db().read() as tx:
        sessions = await views.sessions(tx, "default")
    assert len(sessions) == 1
    return sessions[0].session_id


async def export(rig: Rig, sid: str, fmt: Format, anonymise: bool = False) -> str:
    return await transcript.export(
        rig.runtime.require_db(), "default", sid, fmt, anonymise=anonymise
    )


async def test_markdown_groups_by_question_and_thread(rig: Rig) -> None:
    sid = await chat(rig)
    md = await export(rig, sid, Format.MARKDOWN)
    assert md.startswith(f"# #MHChat transcript: session {sid}")
    q1, q2, other = md.index("## Q1"), md.index("## Q2"), md.index("## Other posts")
    assert q1 < q2 < other
    ann, bob = md.index("**ann**"), md.index("**bob**")
    assert q1 < ann < bob < q2  # bob's reply sits in ann's Q1 thread, after her
    assert "  - **bob**" in md  # indented as a reply
    assert "**ann** (first time)" in md
    assert "**host (host)**" in md
    assert "quokka" not in md  # deleted
    assert md.count("### Thread") == 4


async def test_every_format_leaves_out_deleted_posts(rig: Rig) -> None:
    sid = await chat(rig)
    for fmt in Format:
        body = await export(rig, sid, fmt)
        assert "quokka" not in body, fmt
        assert "d1" not in body.replace("id1", ""), fmt
        assert "doing ok" in body, fmt


async def test_json_structure(rig: Rig) -> None:
    sid = await chat(rig)
    data = orjson.loads(await export(rig, sid, Format.JSON))
    assert data["session"] == sid
    assert data["posts"] == 5
    assert data["anonymised"] is False
    q1 = data["questions"][0]
    assert q1["n"] == 1
    (thread,) = [t for t in q1["threads"] if t["posts"][0]["id"] == "a1"]
    assert [p["id"] for p in thread["posts"]] == ["a1", "b1"]
    assert [p["reply"] for p in thread["posts"]] == [False, True]
    assert data["questions"][-1]["n"] is None


async def test_csv_rows_and_formula_guard(rig: Rig) -> None:
    sid = await chat(rig)
    rows = list(csv.DictReader(io.StringIO(await export(rig, sid, Format.CSV))))
    assert tuple(rows[0].keys()) == transcript.CSV_COLUMNS
    assert [r["post_id"] for r in rows if r["question"] == "Q1"] == ["h1", "a1", "b1"]
    (eve,) = [r for r in rows if r["author"] == "eve"]
    assert eve["text"].startswith("'=1+1")  # a spreadsheet will not run it
    assert {r["question"] for r in rows} == {"Q1", "Q2", ""}


async def test_html_escapes_text(rig: Rig) -> None:
    sid = await chat(rig)
    await rig.inject(now_post("x1", author="mal", text="A1 <script>alert(1)</script> #MHChat"))
    page = await export(rig, sid, Format.HTML)
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "<h2>Q1" in page
    assert "<h3>Thread" in page


async def test_anonymised_export_uses_stable_pseudonyms(rig: Rig) -> None:
    sid = await chat(rig)
    for fmt in Format:
        body = await export(rig, sid, fmt, anonymise=True)
        for handle in ("ann", "bob", "cat", "eve", "id-ann", "@bob"):
            assert handle not in body.replace("anonymised", "").replace("Anonymised", ""), (
                fmt,
                handle,
            )
        assert "Participant 1" in body, fmt
        assert "Host" in body, fmt
    data = orjson.loads(await export(rig, sid, Format.JSON, anonymise=True))
    posts = [p for q in data["questions"] for t in q["threads"] for p in t["posts"]]
    by_text = {p["text"].split(" #")[0]: p for p in posts}
    assert by_text["A1 doing ok, thanks @Participant2"]["author"] == "Participant 1"
    assert by_text["glad to hear it @Participant1"]["author"] == "Participant 2"
    assert all(p["id"] is None and p["url"] is None for p in posts)
    again = await export(rig, sid, Format.JSON, anonymise=True)
    assert orjson.loads(again) == data  # stable


async def test_anonymised_export_hides_whole_names_with_spaces(rig: Rig) -> None:
    """A Facebook name has spaces; the host's welcome mentions it whole."""
    sid = await chat(rig)
    await rig.inject(now_post("t1", author="Tom Moss", text="A1 first time here #MHChat"))
    await rig.inject(
        now_post(
            "h2",
            author="host",
            text="Welcome to #MHChat, @Tom Moss! Be kind.",
            is_own=True,
            parent="t1",
        )
    )
    for fmt in Format:
        body = await export(rig, sid, fmt, anonymise=True)
        assert "Moss" not in body, fmt
        assert "Tom" not in body, fmt
    data = orjson.loads(await export(rig, sid, Format.JSON, anonymise=True))
    texts = [p["text"] for q in data["questions"] for t in q["threads"] for p in t["posts"]]
    assert "Welcome to #MHChat, @Participant5! Be kind." in texts


async def test_csv_guards_every_cell_a_payload_fills(rig: Rig) -> None:
    sid = await chat(rig)
    await rig.inject(now_post("=SUM(1+1)", author="mal", text="A1 hi #MHChat"))
    rows = list(csv.DictReader(io.StringIO(await export(rig, sid, Format.CSV))))
    (mal,) = [r for r in rows if r["author"] == "mal"]
    assert mal["post_id"] == "'=SUM(1+1)"


async def test_dashboard_export_route_and_audit(rig: Rig) -> None:
    await rig.sign_in()
    sid = await chat(rig)
    page = await (await rig.client.get("/dashboard/transcripts")).text()
    for fmt in ("md", "html", "json", "csv"):
        assert f'href="/dashboard/transcripts/{sid}.{fmt}"' in page
    assert 'name="anonymise"' in page
    resp = await rig.client.get(f"/dashboard/transcripts/{sid}.csv")
    assert resp.headers["Content-Disposition"] == f'attachment; filename="mhchat-{sid}.csv"'
    assert "ann" in await resp.text()
    resp = await rig.client.get(
        f"/dashboard/transcripts/{sid}/export", params={"format": "md", "anonymise": "1"}
    )
    body = await resp.text()
    assert resp.status == 200
    assert "Participant 1" in body
    assert "ann" not in body
    assert resp.headers["Content-Disposition"].endswith(f'mhchat-{sid}-anonymised.md"')
    assert (await rig.client.get("/dashboard/transcripts/nope.md")).status == 404
    audit = await rig.rows(
        "SELECT detail FROM audit WHERE what = 'exported transcript' ORDER BY id"
    )
    assert audit == [(f"{sid} csv",), (f"{sid} md anonymised",)]
    chart = await (await rig.client.get(f"/dashboard/api/sessions/{sid}/activity")).json()
    assert sum(chart["posts"]["fake"]) == 4  # the host's own post and the deleted one do not count
    assert chart["participants"][-1] == 4
    assert chart["first_timers"][-1] == 4
    assert (await rig.client.get(f"/dashboard/sessions/{sid}")).status == 200


async def test_command_line_export(rig: Rig, tmp_path: Path) -> None:
    sid = await chat(rig)
    config = tmp_path / "mhchat.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "dash.db"}"\n', encoding="utf-8")
    out = tmp_path / "t.json"
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["transcript", sid, "--format", "json", "--anonymise", "-o", str(out), "-c", str(config)]
    )
    assert await asyncio.to_thread(args.func, args) == 0
    data = orjson.loads(out.read_text(encoding="utf-8"))
    assert data["anonymised"] is True
    assert data["posts"] == 5
    missing = parser.parse_args(["transcript", "1999-01-01", "-c", str(config)])
    assert await asyncio.to_thread(missing.func, missing) == 1


async def test_command_line_export_to_a_place_it_cannot_write_is_explained(
    rig: Rig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sid = await chat(rig)
    config = tmp_path / "mhchat.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "dash.db"}"\n', encoding="utf-8")
    parser = argparse.ArgumentParser()
    command.add_parser(parser.add_subparsers())
    for output in (tmp_path, tmp_path / "no" / "such" / "t.md"):
        args = parser.parse_args(["transcript", sid, "-o", str(output), "-c", str(config)])
        assert await asyncio.to_thread(args.func, args) == 1
        assert f"mhchat cannot write {output}:" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()
