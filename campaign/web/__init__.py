"""The browser's front door: `campaign serve`, a console over the same runner and reports.

console.py builds the Starlette app, safety.py holds every rule that keeps it safe
(bind address, login, CSRF, upload size, CSP), pages.py the routes, runs.py the
campaigns this server is sending, account.py the account's senders and templates,
options.py the form's options turned into runner settings. Neither door knows the other:
cli.py only calls `serve`.
"""

from campaign.web.console import ConsoleConfig, create_app, serve

__all__ = ["ConsoleConfig", "create_app", "serve"]
