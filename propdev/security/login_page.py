"""The HTML of the login form and of the authorization error page (no outside assets)."""

from __future__ import annotations

import functools
import html
import importlib.resources
import string
from collections.abc import Mapping

from propdev.security.server import AuthorizationRequest

# Sent with every page: nothing may frame it, load scripts, or leak the URL. No CSP
# ``form-action``: browsers apply it to the 303 that follows the post, and the app's
# redirect URI (a custom scheme) would be blocked.
PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


@functools.cache
def _template() -> string.Template:
    text = importlib.resources.files("propdev.security").joinpath("login.html").read_text("utf-8")
    return string.Template(text)


def _page(title: str, content: str) -> str:
    return _template().substitute(title=html.escape(title), content=content)


def _hidden(params: Mapping[str, str]) -> str:
    return "\n".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in sorted(params.items())
    )


def render_login(
    request: AuthorizationRequest,
    *,
    ticket: str,
    ticket_field: str,
    error: str | None = None,
    username: str = "",
) -> str:
    """The sign-in form: ``username``, ``password``, ``otp``, and hidden request fields."""
    error_html = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    content = f"""<h1>Sign in</h1>
<p class="sub">to continue to <strong>{html.escape(request.client_name)}</strong></p>
{error_html}
<form method="post" action="/oauth/authorize" autocomplete="on">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="{html.escape(username)}"
 autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<label for="otp">One-time code <small>(operators' accounts with 2FA)</small></label>
<input type="text" id="otp" name="otp" inputmode="numeric" pattern="[0-9]{{6}}" maxlength="6"
 autocomplete="one-time-code">
{_hidden(request.params)}
<input type="hidden" name="{html.escape(ticket_field)}" value="{html.escape(ticket)}">
<button type="submit">Sign in</button>
</form>"""
    return _page("Sign in", content)


def render_error(title: str, detail: str) -> str:
    """An error page that does not send the browser anywhere."""
    content = f"""<h1>{html.escape(title)}</h1>
<p class="error" role="alert">{html.escape(detail)}</p>
<p class="sub">Close this page and start again from the app.</p>"""
    return _page(title, content)
