"""The dashboard's pages in menu order: (script under dashboard/, title, icon). A module of
its own so tests and benchmarks read the list without running the app.

>>> [path for path, _title, _icon in PAGES][:2]
['pages/overview.py', 'pages/drift.py']
"""

__all__ = ["PAGES", "PAGE_FILES"]

PAGES = (
    ("pages/overview.py", "Overview", ":material/dashboard:"),
    ("pages/drift.py", "Drift", ":material/query_stats:"),
    ("pages/performance.py", "Performance", ":material/speed:"),
    ("pages/alerts.py", "Alerts", ":material/notifications:"),
    ("pages/models.py", "Models", ":material/account_tree:"),
    ("pages/dead_letters.py", "Dead letters", ":material/report:"),
)

#: Page name (its script's stem) -> its script, as ``AppTest.switch_page`` takes it.
PAGE_FILES = {path.removeprefix("pages/").removesuffix(".py"): path for path, _, _ in PAGES}
