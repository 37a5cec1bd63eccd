"""Operational commands of the `qamqor` CLI: publish a run, demo users, offer delivery, the
access-log check and the web server."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer
from rich.table import Table

from qamqor.cli import _date, _fail, app, console

access_app = typer.Typer(help="The hash-chained access log.")
app.add_typer(access_app, name="access-log")


def _latest_card_date(data_dir: Path) -> date:
    from qamqor.levels.compute import card_dates

    dates = card_dates(data_dir)
    if not dates:
        _fail(f"no family cards in {data_dir}: run `qamqor run {data_dir}` first")
    return dates[-1]


@app.command()
def publish(
    data_dir: Path, on: str = typer.Option(None, "--date", help="Default: the latest cards")
) -> None:
    """Publish a run into the operational store (all or nothing) and bring the cases in line."""
    from qamqor.ops.cases import CaseError
    from qamqor.ops.daily import publish_and_sync
    from qamqor.ops.publish import PublishError

    when = _date(on) if on else _latest_card_date(data_dir)
    try:
        r = publish_and_sync(data_dir, when)
    except (PublishError, CaseError) as e:
        _fail(str(e))
        return
    p, c = r.published, r.cases
    state = "already published, nothing changed" if p.skipped else "published"
    console.print(
        f"{when}: {state}: {p.families:,} families, {p.entitlements:,} entitlements, "
        f"{p.findings:,} findings; cases: {c.opened:,} opened, {c.updated:,} followed, "
        f"{c.proposed_for_closure:,} proposed for closure, {c.children_registered:,} children "
        "registered"
    )


@app.command("demo-users")
def demo_users(data_dir: Path) -> None:
    """Create the demo users (one per role) of a synthetic installation and print them."""
    from qamqor.ops.demo import seed_demo_users
    from qamqor.store.db import database_url, session_factory

    try:
        users = seed_demo_users(session_factory(database_url(data_dir)))
    except LookupError as e:
        _fail(str(e))
        return
    t = Table("user", "role", "password", "sees", title="Demo users")
    for u in users:
        t.add_row(u["username"], u["role"], u["password"], u["note"])
    console.print(t)


@app.command("send-offers")
def send_offers(data_dir: Path, limit: int = typer.Option(None, min=1)) -> None:
    """Deliver the pending offers, exactly once each, to DIR/outbox/messages.jsonl."""
    from qamqor.ops.sender import FileChannel, send_pending
    from qamqor.store.db import database_url, session_factory

    channel = FileChannel(Path(data_dir) / "outbox" / "messages.jsonl")
    r = send_pending(session_factory(database_url(data_dir)), channel, date.today(), limit)
    console.print(f"{r.sent:,} offers sent ({r.resent_after_crash:,} resumed after a crash)")


@access_app.command("verify")
def access_log_verify(data_dir: Path) -> None:
    """Walk the whole chain; exit 1 naming every edited, deleted or inserted entry."""
    from qamqor.ops.access_log import verify
    from qamqor.store.db import database_url, session_factory

    v = verify(session_factory(database_url(data_dir)))
    if not v.ok:
        for p in v.problems:
            console.print(f"[red]tampered:[/red] {p}")
        _fail(f"the access log of {v.entries:,} entries does not verify")
    console.print(f"the access log verifies: {v.entries:,} entries, chain and head intact")


@app.command()
def serve(
    data_dir: Path,
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000, min=1, max=65535),
    workers: int = typer.Option(1, min=1, max=16),
) -> None:
    """Serve the API (OpenAPI at /docs) and the web pages for DATA_DIR's published run."""
    import os

    import uvicorn

    from qamqor.store.db import database_url, migrate

    if not Path(data_dir).is_dir():
        _fail(f"{data_dir} is not a directory")
    migrate(database_url(data_dir))  # once, before the workers start
    os.environ["QAMQOR_DATA_DIR"] = str(Path(data_dir).resolve())
    uvicorn.run("qamqor.api.main:app", host=host, port=port, workers=workers, log_level="warning")
