"""Response templates: written answers to law enforcement and to colleagues, filled from a case.

A template is a Markdown file whose name (without `.md`) is how people call it. It opens with a
TOML block between `+++` lines:

    +++
    title = "Acknowledgement of an emergency request"   # required
    audience = "law_enforcement"                         # or "internal"
    fields = ["agency", "officer"]                       # what the person fills in by hand
    categories = ["edr", "threat_to_life"]               # optional: cases it suits
    +++
    Dear {officer}, ... {ref} ...

`{name}` is a placeholder, `{{` and `}}` are literal braces. Case placeholders (`CASE_PLACEHOLDERS`)
come from the case; `fields` are given by the person (`--set officer=...`) and otherwise stay in
the text as `[officer]` for them to edit. Any other name is an error naming the file, line and
placeholder, reported when the templates load, so a team sees a broken file at once.

The shipped defaults live in `app/response_templates/`; a team's own folder
(`$XDG_CONFIG_HOME/vigil/templates/`, default `~/.config/vigil/templates/`) adds templates and
replaces shipped ones of the same name.

For a sensitive case `{details}` is never filled: it becomes a notice, and a person who must
share something reveals the details (audited) and pastes what is needed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path

from sqlmodel import Session

from app.core import toml
from app.core.errors import BadInput, NotFound
from app.core.text import LINE_LIMIT, clean_text, one_line
from app.core.times import format_instant
from app.services.sensitive import withheld_title
from data import queries
from data.domain import CATEGORY_LABELS, SEVERITY_LABELS, Category, severity_name
from data.models import Case, Responder
from widgets.timefmt import viewer_zone

SUFFIX = ".md"
FENCE = "+++"
AUDIENCES = ("law_enforcement", "internal")
WITHHELD = "[sensitive details withheld: reveal them in Vigil and paste only what must be shared]"

CASE_PLACEHOLDERS: dict[str, str] = {
    "ref": "the case reference, e.g. ESC-0042",
    "title": "the case title",
    "category": "the category value, e.g. edr",
    "category_label": "the category in words, e.g. Emergency data request",
    "severity": "sev1..sev4",
    "severity_label": "the severity in words, e.g. imminent risk to life",
    "status": "triggered, acknowledged or resolved",
    "stage": "the work stage, e.g. investigating",
    "assignee": "the assignee's handle, or 'unassigned'",
    "assignee_name": "the assignee's name, or 'unassigned'",
    "opened_at": "when the case opened, on the writer's clock",
    "acknowledged_at": "when it was acknowledged, on the writer's clock, or 'not yet'",
    "responder": "the writer's handle",
    "responder_name": "the writer's name",
    "today": "today's date on the writer's clock, e.g. 2026-11-26",
    "details": "the case details; never filled for a sensitive case",
}

_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_TEMPLATE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_FRONT_KEYS = {"title", "audience", "fields", "categories"}


@dataclass(frozen=True, slots=True)
class ResponseTemplate:
    name: str
    title: str
    audience: str
    fields: tuple[str, ...]
    categories: tuple[str, ...]
    body: str
    source: str  # the file it came from, for messages
    shipped: bool
    body_line: int  # the file line the body starts on, for messages

    def placeholders(self) -> list[str]:
        """The placeholder names in the body, in order of first use."""
        seen: list[str] = []
        for _, name, _ in _tokens(self.body, self.source, self.body_line):
            if name is not None and name not in seen:
                seen.append(name)
        return seen

    def suits(self, category: str) -> bool:
        return not self.categories or category in self.categories


@dataclass(frozen=True, slots=True)
class FilledResponse:
    template: str
    ref: str
    text: str
    unfilled: tuple[str, ...]  # fields left as [name] for the person to write


def _tokens(body: str, source: str, first_line: int) -> list[tuple[str, str | None, int]]:
    """The body as (literal text, placeholder name or None, its file line) pieces; a malformed
    placeholder raises BadInput naming the file and line."""
    pieces: list[tuple[str, str | None, int]] = []
    position = 0
    for match in _TOKEN.finditer(body):
        literal = body[position : match.start()]
        position = match.end()
        token = match.group(0)
        line = first_line + body.count("\n", 0, match.start())
        if token in ("{{", "}}"):
            pieces.append((literal + token[0], None, line))
            continue
        if token in ("{", "}"):
            raise BadInput(
                f"{source}: line {line}",
                f"a lone {token!r}; write {token * 2!r} for a literal brace",
            )
        name = match.group(1).strip()
        if not _NAME.fullmatch(name):
            raise BadInput(
                f"{source}: line {line}",
                f"placeholder {token!r} is not a name (lowercase letters, digits, _)",
            )
        pieces.append((literal, name, line))
    pieces.append((body[position:], None, first_line + body.count("\n")))
    return pieces


def _front_matter(text: str, source: str) -> tuple[dict[str, object], str, int]:
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != FENCE:
        raise BadInput(source, f"expected the file to open with a {FENCE} line, then TOML")
    for index in range(1, len(lines)):
        if lines[index].strip() == FENCE:
            try:
                meta = toml.loads("".join(lines[1:index]))
            except toml.TOMLDecodeError as exc:
                raise BadInput(source, f"front matter: {exc}") from None
            return meta, "".join(lines[index + 1 :]), index + 2
    raise BadInput(source, f"the front matter is not closed by a {FENCE} line")


def _names(meta: Mapping[str, object], key: str, source: str) -> tuple[str, ...]:
    value = meta.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadInput(f"{source}: {key}", f"expected a list of names, got {value!r}")
    return tuple(value)


MAX_TEMPLATE_BODY = 20_000


def parse_template(name: str, text: str, source: str, *, shipped: bool = False) -> ResponseTemplate:
    """Read and check one template file's text; BadInput names the file, key or line."""
    meta, body, body_line = _front_matter(text, source)
    unknown = sorted(set(meta) - _FRONT_KEYS)
    if unknown:
        raise BadInput(
            f"{source}: {unknown[0]}",
            f"unknown key; expected {', '.join(sorted(_FRONT_KEYS))}",
        )
    title = meta.get("title")
    if not isinstance(title, str) or not title.strip():
        raise BadInput(f"{source}: title", f"expected a non-empty text, got {title!r}")
    audience = meta.get("audience", "law_enforcement")
    if audience not in AUDIENCES:
        raise BadInput(f"{source}: audience", f"expected one of {AUDIENCES}, got {audience!r}")
    fields = _names(meta, "fields", source)
    for field in fields:
        if not _NAME.fullmatch(field):
            raise BadInput(f"{source}: fields", f"{field!r} is not a name (a-z, 0-9, _)")
        if field in CASE_PLACEHOLDERS:
            raise BadInput(f"{source}: fields", f"{field!r} is filled from the case already")
    categories = _names(meta, "categories", source)
    known = {c.value for c in Category}
    for category in categories:
        if category not in known:
            raise BadInput(
                f"{source}: categories", f"expected categories such as edr, got {category!r}"
            )
    title = one_line(f"{source}: title", title, LINE_LIMIT, required=True)
    clean_text(f"{source}: body", body, MAX_TEMPLATE_BODY, required=True)
    template = ResponseTemplate(
        name=name,
        title=title,
        audience=str(audience),
        fields=fields,
        categories=categories,
        body=body,
        source=source,
        shipped=shipped,
        body_line=body_line,
    )
    allowed = set(CASE_PLACEHOLDERS) | set(fields)
    for _, placeholder, line in _tokens(body, source, body_line):
        if placeholder is not None and placeholder not in allowed:
            raise BadInput(
                f"{source}: line {line}",
                f"unknown placeholder {{{placeholder}}}; use a case placeholder "
                f"({', '.join(CASE_PLACEHOLDERS)}) or declare it in fields",
            )
    return template


def override_dir() -> Path:
    """The team's own template folder: `$XDG_CONFIG_HOME/vigil/templates`."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "vigil" / "templates"


def _read_folder(folder: Path, *, shipped: bool) -> dict[str, ResponseTemplate]:
    found: dict[str, ResponseTemplate] = {}
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        name = path.name[: -len(SUFFIX)]
        if not _TEMPLATE_NAME.match(name):
            raise BadInput(str(path), "expected a file name of lowercase letters, digits, - and _")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInput(str(path), f"cannot read it as UTF-8 text: {exc}") from None
        found[name] = parse_template(name, text, str(path), shipped=shipped)
    return found


def load_templates(overrides: Path | None = None) -> dict[str, ResponseTemplate]:
    """The shipped templates, with the team's folder adding to and replacing them."""
    shipped = resources.files(__package__ or "app.services.shiftwork") / "response_templates"
    with resources.as_file(shipped) as folder:
        templates = _read_folder(Path(folder), shipped=True)
    folder = overrides if overrides is not None else override_dir()
    if folder.is_dir():
        templates.update(_read_folder(folder, shipped=False))
    return dict(sorted(templates.items()))


def get_template(templates: Mapping[str, ResponseTemplate], name: str) -> ResponseTemplate:
    found = templates.get(name.strip())
    if found is None:
        raise NotFound(f"no response template {name!r}; there are: {', '.join(templates)}")
    return found


# --- filling ------------------------------------------------------------------------


def case_values(
    session: Session, case: Case, assignee: Responder | None, writer: Responder, now: datetime
) -> dict[str, str]:
    """Every case placeholder's value, times on the writer's clock."""
    zone = viewer_zone(writer.timezone)
    try:
        category_label = CATEGORY_LABELS[Category(case.category)]
    except ValueError:
        category_label = case.category
    return {
        "ref": case.ref,
        "title": case.title,
        "category": case.category,
        "category_label": category_label,
        "severity": severity_name(case.severity),
        "severity_label": SEVERITY_LABELS.get(case.severity, ""),
        "status": case.status,
        "stage": case.stage,
        "assignee": assignee.handle if assignee else "unassigned",
        "assignee_name": assignee.name if assignee else "unassigned",
        "opened_at": format_instant(case.created_at, zone),
        "acknowledged_at": (
            format_instant(case.acknowledged_at, zone) if case.acknowledged_at else "not yet"
        ),
        "responder": writer.handle,
        "responder_name": writer.name,
        "today": now.astimezone(zone).date().isoformat(),
        "details": WITHHELD
        if case.sensitive
        else (queries.case_details(session, case) or "(none)"),
    }


def parse_settings(pairs: Sequence[str]) -> dict[str, str]:
    """`KEY=VALUE` pairs from the command line."""
    settings: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BadInput("--set", f"expected KEY=VALUE, got {pair!r}")
        settings[key.strip()] = value
    return settings


def fill(
    template: ResponseTemplate, values: Mapping[str, str], settings: Mapping[str, str]
) -> FilledResponse:
    """The template's text with its placeholders filled: case values, then the person's
    `settings` for the template's fields; an unset field stays as `[name]`."""
    for key in settings:
        if key not in template.fields:
            known = ", ".join(template.fields) or "none"
            raise BadInput(
                f"--set {key}", f"not a field of template {template.name!r} (its fields: {known})"
            )
    parts: list[str] = []
    unfilled: list[str] = []
    for literal, name, _ in _tokens(template.body, template.source, template.body_line):
        parts.append(literal)
        if name is None:
            continue
        if name in settings:
            parts.append(settings[name])
        elif name in template.fields:
            parts.append(f"[{name}]")
            if name not in unfilled:
                unfilled.append(name)
        else:
            parts.append(values[name])  # parse_template admitted only known names
    return FilledResponse(template.name, values.get("ref", ""), "".join(parts), tuple(unfilled))


def fill_for_case(
    session: Session,
    template: ResponseTemplate,
    ref: str,
    writer: Responder,
    now: datetime,
    settings: Mapping[str, str] | None = None,
    *,
    reveal_title: bool = False,
) -> FilledResponse:
    """Fill `template` from case `ref` for `writer` to edit and log; a sensitive case's
    title only with `reveal_title` (the caller audits it)."""
    case = queries.case_by_ref(session, ref)
    if case is None:
        raise NotFound(f"no case {ref!r}")
    assignee = session.get(Responder, case.assignee_id) if case.assignee_id else None
    values = case_values(session, case, assignee, writer, now)
    if case.sensitive and not reveal_title:
        values["title"] = withheld_title(case.category, case.severity)
    return fill(template, values, settings or {})
