"""``lastmile dashboard``: serve the Streamlit dashboard.

Runs Streamlit in this process (its own ``streamlit run`` entry point), bound to
``dashboard_host:dashboard_port`` (127.0.0.1:8501 by default), headless and
without usage statistics. The app reads every other setting (ClickHouse, registry,
password) from the same ``LASTMILE_*`` variables / ``lastmile.toml`` itself.

    python -m dashboard.cli --port 8502
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from streams.config import ConfigError, load_settings

APP = Path(__file__).resolve().parent / "app.py"


def streamlit_args(host: str, port: int) -> list[str]:
    """The ``streamlit run`` command line for the dashboard.

    >>> streamlit_args("127.0.0.1", 8501)[:2] == ["run", str(APP)]
    True
    """
    return [
        "run",
        str(APP),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        # Served code does not change under a running server; no watcher threads.
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--client.toolbarMode", "viewer",
        "--theme.base", "light",
    ]  # fmt: skip


@click.command("dashboard", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default=None, help="Address to bind (default: dashboard_host).")
@click.option("--port", type=int, default=None, help="Port (default: dashboard_port).")
def dashboard(host: str | None, port: int | None) -> None:
    """Serve the dashboard: traffic, drift, performance, alerts, models, dead letters.

    \b
    Bound to 127.0.0.1:8501 unless LASTMILE_DASHBOARD_HOST / _PORT say otherwise;
    set LASTMILE_DASHBOARD_PASSWORD to ask for a password first.
    """
    try:
        settings = load_settings()
        settings.clickhouse_params()  # a bad ClickHouse URL fails here, not in the browser
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    host = host or settings.dashboard_host
    port = port or settings.dashboard_port
    if host not in ("127.0.0.1", "localhost", "::1") and not settings.dashboard_password:
        click.echo(
            f"lastmile dashboard: listening on {host} without a password; "
            "set LASTMILE_DASHBOARD_PASSWORD to require one",
            err=True,
        )
    click.echo(f"lastmile dashboard: http://{host}:{port}", err=True)
    run(host, port)


def run(host: str, port: int) -> None:
    """Hand this process over to Streamlit's server until it stops."""
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli as streamlit_cli

    # The app sits beside a pages/ directory. Streamlit would serve those files as
    # pages of their own until the entry point first calls st.navigation; this app
    # always does, so say so up front and every page goes through app.py's gate.
    PagesManager.uses_pages_directory = False
    streamlit_cli.main.main(args=streamlit_args(host, port), prog_name="streamlit")


if __name__ == "__main__":
    sys.exit(dashboard())
