"""The frame every page renders in: sidebar pickers, links' query parameters, the
refreshing fragment, and the empty states."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import streamlit as st

from dashboard import queries as q

# Query parameters a link may carry (alerts link to the drift view "at" a moment).
LINK_PARAMS = ("model", "version", "from", "to", "at", "feature", "statistic")
FOCUS_BEFORE = dt.timedelta(hours=1)
FOCUS_AFTER = dt.timedelta(minutes=30)


def apply_link(params: dict[str, str]) -> None:
    """Take over a link's query parameters into the shared state, once per link:
    afterwards the sidebar is the user's again, even while the URL still carries them."""
    given = {k: params[k] for k in LINK_PARAMS if params.get(k)}
    signature = tuple(sorted(given.items()))
    if not given or st.session_state.get("lm_link") == signature:
        return
    st.session_state["lm_link"] = signature
    state = st.session_state
    if "model" in given:
        state[q.K_MODEL] = given["model"]
    if "version" in given:
        try:
            state[q.K_VERSION] = int(given["version"])
        except ValueError:
            state[q.K_VERSION] = q.ALL_VERSIONS
    at = q.parse_time(given.get("at"))
    start, end = q.parse_time(given.get("from")), q.parse_time(given.get("to"))
    if at is not None:
        state[q.K_FOCUS] = at
        start, end = start or at - FOCUS_BEFORE, end or at + FOCUS_AFTER
    if start is not None or end is not None:
        now = dt.datetime.now(q.UTC)
        start = start or (end or now) - dt.timedelta(hours=1)
        end = min(end or now, max(now, start + dt.timedelta(minutes=1)))
        state[q.K_RANGE] = "Custom"
        # The datetime widgets take naive values; the sidebar says they are UTC.
        state[q.K_FROM] = start.replace(tzinfo=None)
        state[q.K_TO] = end.replace(tzinfo=None)
    if "feature" in given:
        state[q.K_FEATURE] = given["feature"]
    if "statistic" in given:
        state["lm_drift_statistic"] = given["statistic"]


def _keep(key: str, options: list, default: object) -> None:
    """A widget's state must be one of its options (a model may be gone by now)."""
    if st.session_state.get(key, default) not in options:
        st.session_state[key] = default if default in options else options[0]
    else:
        st.session_state.setdefault(key, default)


def sidebar() -> None:
    """The pickers every page shares. Their widget keys are the session-state keys
    queries.current_view() reads, so a choice carries over from page to page."""
    state = st.session_state
    state.setdefault(q.K_NONCE, 0)
    _keep(q.K_RANGE, list(q.RANGE_CHOICES), q.DEFAULT_RANGE)
    _keep(q.K_REFRESH, list(q.REFRESH_CHOICES), q.DEFAULT_REFRESH)
    s = q.settings()
    db = q.Db.from_settings(s)
    with st.sidebar:
        st.markdown("## lastmile")
        try:
            catalog = q.models(db, s.registry_location, q.current_tick())
        except q.StoreUnavailable as err:
            st.error(str(err))
            catalog = {}
        model_options = [q.ALL_MODELS, *catalog]
        _keep(q.K_MODEL, model_options, q.ALL_MODELS)
        model = st.selectbox(
            "Model",
            model_options,
            key=q.K_MODEL,
            format_func=lambda m: m or "All models",
        )
        version_options = [q.ALL_VERSIONS, *catalog.get(model, [])]
        _keep(q.K_VERSION, version_options, q.ALL_VERSIONS)
        st.selectbox(
            "Version",
            version_options,
            key=q.K_VERSION,
            format_func=lambda v: "All versions" if v < 0 else f"v{v}",
            disabled=not model,
        )
        choice = st.selectbox("Time range", list(q.RANGE_CHOICES), key=q.K_RANGE)
        if choice == "Custom":
            now = dt.datetime.now(q.UTC).replace(tzinfo=None, second=0, microsecond=0)
            state.setdefault(q.K_FROM, now - dt.timedelta(hours=1))
            state.setdefault(q.K_TO, now)
            st.datetime_input("From (UTC)", key=q.K_FROM, step=dt.timedelta(minutes=1))
            st.datetime_input("To (UTC)", key=q.K_TO, step=dt.timedelta(minutes=1))
        left, right = st.columns([3, 2], vertical_alignment="bottom")
        left.selectbox("Refresh every", list(q.REFRESH_CHOICES), key=q.K_REFRESH)
        if right.button("Refresh", help="Fetch everything again now"):
            state[q.K_NONCE] += 1
        since, until = q.resolve_range(choice, state.get(q.K_FROM), state.get(q.K_TO))
        st.caption(
            f"{since:%Y-%m-%d %H:%M} → {until:%Y-%m-%d %H:%M} UTC  \nClickHouse `{db.label}`"
        )


def page(title: str, render: Callable[[q.View], None]) -> None:
    """A page's entry point: its title, then its body refreshing in a fragment.

    Normally app.py has already gated the session and drawn the sidebar. But a
    ``pages/`` directory beside the entry point makes Streamlit run a page file on
    its own until something calls st.navigation (a server's first request for
    /drift, and every page run under AppTest): then the page draws the frame itself,
    password gate first.
    """
    from streamlit.runtime.pages_manager import PagesManager

    from dashboard import auth

    if PagesManager.uses_pages_directory:
        st.set_page_config(page_title="lastmile", layout="wide")
        if not auth.signed_in(q.settings().dashboard_password):
            auth.login_form(q.settings().dashboard_password or "")
            st.stop()
        apply_link(st.query_params.to_dict())
        sidebar()
    st.title(title)
    live(render)


def empty(message: str) -> None:
    """An empty state that says what to do."""
    st.info(message, icon=":material/info:")


NO_PREDICTIONS = (
    "No predictions yet — run `lastmile simulate` (or `lastmile up --demo`) "
    "to send traffic, then come back."
)


def live(render: Callable[[q.View], None]) -> None:
    """Run a page's body in a fragment that reruns itself every refresh interval.

    Only the fragment is redrawn, not the page: no flicker, and the sidebar keeps
    its state. The view is resolved inside, so a relative range moves with time.
    """

    @st.fragment(run_every=q.refresh_seconds())
    def body() -> None:
        try:
            view = q.current_view()
            render(view)
            st.caption(f"Data as of {dt.datetime.now(q.UTC):%H:%M:%S} UTC from `{view.db.label}`")
        except q.StoreUnavailable as err:
            st.error(str(err), icon=":material/cloud_off:")

    body()


def need_model(view: q.View) -> q.View | None:
    """Pages about one model: the sidebar's, or the first one there is (said so)."""
    if view.model:
        return view
    names = list(q.models(view.db, view.registry, view.tick))
    if not names:
        empty(NO_PREDICTIONS)
        return None
    st.caption(f"Showing model **{names[0]}** — pick another in the sidebar.")
    return view.with_model(names[0])
