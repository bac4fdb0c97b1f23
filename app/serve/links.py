"""The pages behind a page's links: `GET /ack/{token}` shows a small confirmation page and
acts on nothing (a chat app's link preview is harmless); `POST /ack/{token}` acknowledges
as the paged person; `GET /open/{token}` shows the case as far as a page may.

Each answer is a small HTML page that says what happened, refusals included (expired,
already used, the case moved on): 200 when it acted or can act, 410 once the link can no
longer act, 404 for a link that is not one. The token never reaches a log line. The
database work runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

from html import escape

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from app.services.cases import CaseService
from app.services.links import LinkRefused, LinkService, LinkView

STATUS = {"ready": 200, "done": 200, "invalid": 404, "expired": 410, "used": 410, "moved_on": 410}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Vigil: {heading}</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 32rem; margin: 3rem auto;
  padding: 0 1rem; color: #1b1f24; background: #f6f7f9; }}
.card {{ background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 1.5rem; }}
.sev {{ display: inline-block; padding: 0 .5rem; border-radius: 4px; background: #b42318;
  color: #fff; font-weight: 600; }}
dl {{ display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }}
dt {{ color: #57606a; }} dd {{ margin: 0; }}
button {{ font: inherit; font-weight: 600; padding: .6rem 1.4rem; border: 0;
  border-radius: 6px; background: #1f6feb; color: #fff; cursor: pointer; }}
.note {{ color: #57606a; font-size: .9rem; }}
</style></head>
<body><div class="card">
<h1>{heading}</h1>
<p>{message}</p>
{facts}
{action}
</div></body></html>
"""


def _facts(view: LinkView) -> str:
    if not view.ref:
        return ""
    rows = [
        ("Case", escape(view.ref)),
        ("Severity", f'<span class="sev">{escape(view.severity)}</span>'),
        ("Category", escape(view.category)),
        ("Title", escape(view.title) if view.title else "sensitive: open Vigil to view"),
        ("Status", escape(view.status)),
        ("Paged", escape(view.handle)),
    ]
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def render(view: LinkView, action: str | None = None) -> HTMLResponse:
    """The page for `view`; `action` is where its button posts (None: no button)."""
    headings = {
        "ready": "Acknowledge this page?",
        "done": "Done" if action is None and view.state == "done" else "Case",
        "invalid": "Not a valid link",
        "expired": "This link has expired",
        "used": "This link was already used",
        "moved_on": "Nothing to do",
    }
    button = ""
    if action is not None and view.can_act:
        button = (
            f'<form method="post" action="{escape(action)}">'
            '<button type="submit">Acknowledge</button></form>'
            '<p class="note">Opening this page acknowledged nothing.</p>'
        )
    body = PAGE.format(
        heading=headings[view.state],
        message=escape(view.message),
        facts=_facts(view),
        action=button,
    )
    return HTMLResponse(
        body,
        status_code=STATUS[view.state],
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _service(request: Request) -> LinkService:
    desk = request.app.state.desk
    return LinkService(CaseService(desk.db, desk.clock))


async def ack_page(request: Request) -> Response:
    """GET: what the link would do; acts on nothing."""
    token = request.path_params["token"]
    view = await run_in_threadpool(_service(request).look, token)
    return render(view, action=request.url.path)


async def ack_action(request: Request) -> Response:
    """POST: acknowledge as the paged person, once."""
    token = request.path_params["token"]
    service = _service(request)
    try:
        view = await run_in_threadpool(service.acknowledge, token)
    except LinkRefused as exc:
        view = exc.view
    request.state.note = view.state
    return render(view)


async def open_page(request: Request) -> Response:
    view = await run_in_threadpool(_service(request).open, request.path_params["token"])
    return render(view)
