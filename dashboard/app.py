"""lastmile's dashboard: the Streamlit entry point (``lastmile dashboard`` runs it).

Every run goes through here first: the password gate, the sidebar (model, version,
time range, refresh) whose choices live in ``st.session_state`` and are shared by
every page, links' query parameters, then the page itself.
"""

from __future__ import annotations

import streamlit as st

from dashboard import auth, charts
from dashboard import queries as q
from dashboard.navigation import PAGES
from streams.config import ConfigError


def main() -> None:
    st.set_page_config(page_title="lastmile", page_icon=":material/monitoring:", layout="wide")
    try:
        password = q.settings().dashboard_password
    except ConfigError as err:
        st.error(f"lastmile's configuration is not usable: {err}")
        st.stop()
    if not auth.signed_in(password):
        # Always through st.navigation, even for the sign-in form: an app that never
        # calls it makes Streamlit serve the files in pages/ directly, past this gate.
        login = st.Page(
            lambda: auth.login_form(password or ""),
            title="Sign in",
            url_path="signin",
            default=True,
        )
        st.navigation([login], position="hidden").run()
        return
    charts.apply_link(st.query_params.to_dict())
    pages = [
        st.Page(path, title=title, icon=icon, default=i == 0)
        for i, (path, title, icon) in enumerate(PAGES)
    ]
    page = st.navigation(pages, position="sidebar")
    charts.sidebar()
    page.run()


main()
