"""The dashboard's optional password (``dashboard_password``), asked before any page renders.

The session remembers a digest of the password it was let in with, not a flag: a
changed password signs every open session out on its next run.
"""

from __future__ import annotations

import hashlib
import hmac

import streamlit as st

SESSION_KEY = "lm_auth"
FORM_KEY = "lm_login"
INPUT_KEY = "lm_password"


def password_matches(given: str, expected: str) -> bool:
    """Constant-time comparison, so the time taken says nothing about the password.

    >>> password_matches("s3cret", "s3cret"), password_matches("s3cre", "s3cret")
    (True, False)
    """
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _digest(password: str) -> str:
    return hashlib.sha256(b"lastmile-dashboard\0" + password.encode("utf-8")).hexdigest()


def signed_in(expected: str | None) -> bool:
    """True when no password is set, or this session entered the current one."""
    if not expected:
        return True
    remembered = st.session_state.get(SESSION_KEY)
    return isinstance(remembered, str) and hmac.compare_digest(remembered, _digest(expected))


def login_form(expected: str) -> None:
    """The sign-in form; a right password marks the session and reruns into the app."""
    st.title("lastmile")
    st.caption("This dashboard is protected by a password (setting `dashboard_password`).")
    with st.form(FORM_KEY, clear_on_submit=True):
        given = st.text_input("Password", type="password", key=INPUT_KEY)
        submitted = st.form_submit_button("Sign in")
    if submitted:
        if password_matches(given or "", expected):
            st.session_state[SESSION_KEY] = _digest(expected)
            st.rerun()
        st.error("Wrong password.")
