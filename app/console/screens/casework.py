"""Casework at the console: the keyboard flows and dialogs for verification, disclosure
decisions, legal clocks, containment and action items of the selected case.

`CaseworkFlows` turns the queue screen's keys (V, D, F, K, I) into dialogs built from the
casework view the detail pane shows, and hands what the person chose to the screen as a
`CaseworkCommand`. The screen runs it in a thread worker with `perform`, which calls
`CaseworkService`: every decision is checked there (roles, verification before
disclosure) and lands in the audit chain; a refusal comes back as the console's usual
message, and what was typed is kept as a draft for the next try.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol
from zoneinfo import ZoneInfo

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

# The casework read lives in the console's read model; the queue takes it from here.
from app.console.desk import CaseworkChoices as CaseworkChoices
from app.console.desk import read_casework as read_casework
from app.console.screens.dialogs import CANCEL, Confirm, TextPrompt
from app.core.errors import BadInput
from app.core.times import bounded_instant, parse_due, parse_instant
from app.rules.access import may_work_on, not_yours
from app.rules.casework import FACT_FLAGS, VERIFICATION_STEPS
from app.services.casework.service import CaseworkService
from data.domain import (
    ID_RANGE,
    ClockKind,
    ClockState,
    DataCategory,
    parse_duration,
)
from widgets.timefmt import format_when
from widgets.views import HIDDEN, CaseworkView, DisclosureView

if TYPE_CHECKING:
    from textual.app import App
    from textual.notifications import SeverityLevel

    from app.console.host import ConsoleHost

# --- what the flows work from --------------------------------------------------


@dataclass
class CaseworkLoaded(Message, bubble=False):
    """The casework section's view of a case (None: the case is gone), with what its
    dialogs offer (partners, legal bases)."""

    case_id: int
    view: CaseworkView | None
    choices: CaseworkChoices
    order: int
    """When the read began (`ReadOrder`)."""


@dataclass(frozen=True, slots=True)
class CaseworkTarget:
    """The selected case with its casework, as the pane shows it."""

    case_id: int
    ref: str
    view: CaseworkView
    choices: CaseworkChoices
    assignee: str | None  # the handle the queue shows


# --- commands -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseworkCommand:
    """One casework decision asked for at this console."""

    verb: str  # verify, disclose, approve, decline, file, extend, waive, contain, action.*
    case_id: int
    ref: str
    target: str = ""  # the step, clock, disclosure number or action item it is about
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def draft_key(self) -> tuple[str, int]:
        return (f"{self.verb}:{self.target}", self.case_id)


def _number(name: str, text: str) -> int:
    try:
        return ID_RANGE.check(int(text.strip()))
    except ValueError:
        raise BadInput(name, f"expected a whole number {ID_RANGE}, got {text!r}") from None


def filed_when(text: str, now: datetime) -> datetime | None:
    """When a report was filed: empty for now, how long ago (`20m`), or a time with an
    offset."""
    if not text.strip():
        return None
    try:
        ago = parse_duration(text)
    except ValueError:
        pass
    else:
        return bounded_instant("filed_at", now - ago)
    try:
        return parse_instant("filed_at", text)
    except BadInput:
        raise BadInput(
            "filed_at",
            f"expected how long ago (such as 20m) or a time with an offset, got {text!r}",
        ) from None


def _disclosure_summary(d: DisclosureView) -> str:
    return f"{', '.join(d.data)} to {d.to} under {d.basis}"


def perform(service: CaseworkService, actor: str, command: CaseworkCommand, zone: ZoneInfo) -> str:
    """Carry out `command` as `actor` (blocking: run it in a thread worker); the
    confirmation to show. Refusals are raised as the service phrases them."""
    ref, given = command.ref, command.fields
    now = service.clock.now()

    def when(at: datetime | None) -> str:
        return format_when(at, zone, now) if at is not None else "-"

    match command.verb:
        case "verify":
            label = VERIFICATION_STEPS[command.target].label
            checklist = service.record_verification(actor, ref, command.target, dict(given))
            rest = (
                "verification is complete"
                if checklist.complete
                else f"still to record: {', '.join(checklist.missing)}"
            )
            return f"{ref}: {label} recorded; {rest}"
        case "disclose":
            d = service.request_disclosure(
                actor,
                ref,
                data=given.get("data", ""),
                to=given.get("to", ""),
                basis=given.get("basis", ""),
                accounts=_number("accounts", given.get("accounts", "1")),
                override_reason=given.get("override_reason", ""),
            )
            if d.status == "disclosed":
                overridden = " (verification overridden)" if d.override_reason else ""
                return f"Disclosure {d.number} of {ref} made: {_disclosure_summary(d)}{overridden}"
            return f"Disclosure {d.number} of {ref} requested; it waits for a supervisor's approval"
        case "approve":
            d = service.approve_disclosure(actor, ref, int(command.target))
            return f"Disclosure {d.number} of {ref} approved and made: {_disclosure_summary(d)}"
        case "decline":
            d = service.decline_disclosure(actor, ref, int(command.target), given.get("reason", ""))
            return f"Disclosure {d.number} of {ref} declined"
        case "file":
            clock = service.file_report(
                actor,
                ref,
                report_id=given.get("report_id", ""),
                clock=command.target,
                filed_at=filed_when(given.get("filed_at", ""), now),
            )
            late = " (late)" if clock.outcome == "filed late" else ""
            return f"{ref}: {clock.label}: filed as report {clock.reference}{late}"
        case "extend":
            clock = service.extend_hold(
                actor, ref, clock=command.target, note=given.get("note", "")
            )
            return f"{ref}: {clock.label}: extended; it now expires {when(clock.due_at)}"
        case "waive":
            clock = service.waive_clock(
                actor, ref, clock=command.target, reason=given.get("reason", "")
            )
            return f"{ref}: {clock.label}: {clock.outcome}"
        case "contain":
            step = service.mark_contained(
                actor,
                ref,
                command.target,
                reference=given.get("reference", ""),
                note=given.get("note", ""),
            )
            return f"{ref}: containment step done: {step.label}"
        case "action.add":
            item = service.add_action(
                actor,
                ref,
                given.get("title", ""),
                owner=given.get("owner") or None,
                partner=given.get("partner") or None,
                due_at=parse_due(given.get("due") or None, now),
            )
            due = f", due {when(item.due_at)}" if item.due_at else ""
            return f"Action item {item.id} added to {ref} for {item.owner}{due}"
        case "action.done" | "action.cancel":
            status = "done" if command.verb == "action.done" else "cancelled"
            item = service.close_action(actor, ref, int(command.target), status=status)
            return f"Action item {item.id} of {ref} {item.status}"
    raise ValueError(f"unknown casework command {command.verb!r}")


# --- dialogs --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FormField:
    """One line of a form: what it asks, and what it accepts."""

    name: str
    label: str
    required: bool = False
    value: str = ""
    placeholder: str = ""
    choices: tuple[str, ...] = ()  # the value must be one of these (offered as you type)
    suggestions: tuple[str, ...] = ()  # offered as you type, not enforced
    integer: bool = False


class FormDialog(ModalScreen[dict[str, str] | None]):
    """A few lines of text; Enter moves to the next line and saves on the last one,
    Ctrl+S saves from anywhere, Escape cancels. Answers each field's text by name."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", id="dialog.apply", tooltip="Save what the form says"),
        CANCEL,
    ]

    def __init__(
        self,
        title: str,
        fields: Sequence[FormField],
        *,
        note: str = "",
        warning: bool = False,
        cursor_blink: bool = True,
    ) -> None:
        super().__init__()
        if not fields:
            raise ValueError("fields: a form needs at least one field")
        self.title_text = title
        self.fields = tuple(fields)
        self.note = note
        self.warning = warning
        self.cursor_blink = cursor_blink

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog-wide"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            if self.note:
                classes = "dialog-prompt form-note" + (" -warning" if self.warning else "")
                yield Static(self.note, classes=classes, markup=False)
            for spec in self.fields:
                offered = spec.choices or spec.suggestions
                with Horizontal(classes="form-row"):
                    yield Label(
                        spec.label + (" *" if spec.required else ""),
                        classes="form-label",
                        markup=False,
                    )
                    yield Input(
                        value=spec.value,
                        placeholder=spec.placeholder,
                        suggester=(
                            SuggestFromList(offered, case_sensitive=False) if offered else None
                        ),
                        type="integer" if spec.integer else "text",
                        compact=True,
                        id=f"field-{spec.name}",
                        classes="form-input",
                    )
            yield Static("", id="form-error", classes="dialog-error", markup=False)
            yield Static(
                "Enter: next line (saves on the last)   Ctrl+S: save   Escape: cancel   * required",
                classes="dialog-hint",
                markup=False,
            )

    def _input(self, name: str) -> Input:
        return self.query_one(f"#field-{name}", Input)

    def on_mount(self) -> None:
        for spec in self.fields:
            self._input(spec.name).cursor_blink = self.cursor_blink
        self._input(self.fields[0].name).focus()

    @on(Input.Submitted, ".form-input")
    def _next(self, event: Input.Submitted) -> None:
        event.stop()
        names = [spec.name for spec in self.fields]
        position = names.index((event.input.id or "").removeprefix("field-"))
        if position == len(names) - 1:
            self.action_save()
        else:
            self._input(names[position + 1]).focus()

    def _problem(self, spec: FormField, value: str) -> str | None:
        if spec.required and not value:
            return f"{spec.label}: required"
        if value and spec.choices and value not in spec.choices:
            return f"{spec.label}: expected one of {', '.join(spec.choices)}, got {value!r}"
        return None

    def action_save(self) -> None:
        values = {spec.name: self._input(spec.name).value.strip() for spec in self.fields}
        for spec in self.fields:
            if (problem := self._problem(spec, values[spec.name])) is not None:
                self.query_one("#form-error", Static).update(problem)
                self._input(spec.name).focus()
                return
        self.dismiss(values)

    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True, slots=True)
class Choice:
    key: str
    prompt: str
    disabled: bool = False


class ChoiceDialog(ModalScreen[str | None]):
    """Pick one of a few things with the arrow keys and Enter; answers its key."""

    BINDINGS: ClassVar[list[BindingType]] = [CANCEL]

    def __init__(
        self, title: str, choices: Sequence[Choice], *, note: str = "", highlight: str = ""
    ) -> None:
        super().__init__()
        if not any(not choice.disabled for choice in choices):
            raise ValueError("choices: expected at least one that can be picked")
        self.title_text = title
        self.choices = tuple(choices)
        self.note = note
        self.highlight = highlight

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog-wide"):
            yield Static(self.title_text, classes="dialog-title", markup=False)
            if self.note:
                yield Static(self.note, classes="dialog-prompt", markup=False)
            yield OptionList(
                *(Option(c.prompt, id=c.key, disabled=c.disabled) for c in self.choices),
                markup=False,
                id="choice-list",
            )
            yield Static(
                "Up/Down: choose   Enter: pick   Escape: cancel",
                classes="dialog-hint",
                markup=False,
            )

    def on_mount(self) -> None:
        options = self.query_one("#choice-list", OptionList)
        keys = [c.key for c in self.choices if not c.disabled]
        wanted = self.highlight if self.highlight in keys else keys[0]
        options.highlighted = [c.key for c in self.choices].index(wanted)
        options.focus()

    @on(OptionList.OptionSelected, "#choice-list")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


# --- the flows ------------------------------------------------------------------

DATA_HELP = "comma-separated: " + ", ".join(c.value for c in DataCategory)


class CaseScreen(Protocol):
    """What a case's dialogs need of the screen that opens them (the queue)."""

    @property
    def app(self) -> App[Any]: ...

    @property
    def vigil(self) -> ConsoleHost: ...

    def casework_target(self) -> CaseworkTarget | None: ...

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None: ...


class CaseworkScreen(CaseScreen, Protocol):
    """The casework dialogs also run their commands through the screen."""

    def run_casework(self, command: CaseworkCommand) -> None: ...


class CaseworkFlows:
    """The dialogs behind the queue screen's casework keys, for the selected case."""

    def __init__(self, screen: CaseworkScreen) -> None:
        self.screen = screen
        self.drafts: dict[tuple[str, int], dict[str, str]] = {}

    @property
    def supervising(self) -> bool:
        return self.screen.vigil.profile.supervising

    def forget_draft(self, key: tuple[str, int]) -> None:
        self.drafts.pop(key, None)

    # -- helpers ---------------------------------------------------------------

    def _choose(
        self,
        title: str,
        choices: Sequence[Choice],
        then: Callable[[str], None],
        *,
        note: str = "",
        highlight: str = "",
    ) -> None:
        def picked(key: str | None) -> None:
            if key is not None:
                then(key)

        self.screen.app.push_screen(
            ChoiceDialog(title, choices, note=note, highlight=highlight), picked
        )

    def _form(
        self,
        command: CaseworkCommand,
        title: str,
        fields: Sequence[FormField],
        *,
        note: str = "",
        warning: bool = False,
    ) -> None:
        """Ask for `fields` (a draft from a refused try comes back), then run `command`."""
        draft = self.drafts.get(command.draft_key, {})
        filled = [
            FormField(
                spec.name,
                spec.label,
                spec.required,
                draft.get(spec.name, spec.value),
                spec.placeholder,
                spec.choices,
                spec.suggestions,
                spec.integer,
            )
            for spec in fields
        ]

        def answered(values: dict[str, str] | None) -> None:
            if values is None:
                return
            self.drafts[command.draft_key] = values
            self._run(
                CaseworkCommand(command.verb, command.case_id, command.ref, command.target, values)
            )

        self.screen.app.push_screen(
            FormDialog(
                title,
                filled,
                note=note,
                warning=warning,
                cursor_blink=self.screen.vigil.cursor_blink,
            ),
            answered,
        )

    def _run(self, command: CaseworkCommand) -> None:
        self.screen.run_casework(command)

    def _confirm_then_run(self, title: str, question: str, command: CaseworkCommand) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._run(command)

        self.screen.app.push_screen(Confirm(title, question), answered)

    def _reason_then_run(self, title: str, prompt: str, command: CaseworkCommand) -> None:
        def answered(text: str | None) -> None:
            if text is not None:
                self._run(
                    CaseworkCommand(
                        command.verb, command.case_id, command.ref, command.target, {"reason": text}
                    )
                )

        self.screen.app.push_screen(
            TextPrompt(title, prompt, required=True, cursor_blink=self.screen.vigil.cursor_blink),
            answered,
        )

    # -- V: verification ---------------------------------------------------------

    def _may_work_on(self, t: CaseworkTarget, verb: str) -> bool:
        """Whether this person may `verb` case `t`; if not, say why before any form."""
        profile = self.screen.vigil.profile
        if may_work_on(profile.supervising, t.assignee, profile.handle):
            return True
        self.screen.notify(
            not_yours(t.ref, t.assignee or "someone else", verb),
            title="Not allowed",
            severity="error",
            markup=False,
        )
        return False

    def verify(self) -> None:
        if (t := self.screen.casework_target()) is None or not self._may_work_on(
            t, "verify a request on"
        ):
            return
        verification = t.view.verification
        choices = [
            Choice(
                step.step,
                ("☑ " if step.done else "☐ ")
                + step.label
                + (f"  (recorded by {step.recorded_by}; pick to correct)" if step.done else ""),
            )
            for step in verification.steps
        ]
        need = (
            "required before any disclosure"
            if verification.required
            else f"optional on a {t.view.category} case"
        )
        self._choose(
            f"Verify the request of {t.ref}",
            choices,
            lambda step: self._verify_step(t, step),
            note=f"Verification is {need}. The good-faith determination comes last.",
            highlight=verification.missing[0] if verification.missing else "",
        )

    def _verify_step(self, t: CaseworkTarget, step: str) -> None:
        rule = VERIFICATION_STEPS[step]
        recorded = next(s for s in t.view.verification.steps if s.step == step)
        known = {key: value for key, value in recorded.facts if value != HIDDEN}
        fields = [
            FormField(
                key,
                key.replace("_", " ").capitalize(),
                required=key in rule.required,
                value=known.get(key, ""),
                placeholder=FACT_FLAGS[key],
                choices=rule.choices.get(key, ()),
            )
            for key in rule.required + rule.optional
        ]
        note = "Recording it again replaces what was recorded (both are audited)."
        self._form(
            CaseworkCommand("verify", t.case_id, t.ref, step),
            f"{t.ref}: {rule.label}",
            fields,
            note=note if recorded.done else "",
        )

    # -- D: disclosures ------------------------------------------------------------

    def disclose(self) -> None:
        if (t := self.screen.casework_target()) is None:
            return
        pending = [d for d in t.view.disclosures if d.status == "requested"]
        if not (self.supervising and pending):
            self._request(t)
            return
        choices = [Choice("request", "Record a new disclosure")]
        for d in pending:
            summary = f"{_disclosure_summary(d)} (asked by {d.requested_by})"
            choices += [
                Choice(f"approve:{d.number}", f"Approve #{d.number}: {summary}"),
                Choice(f"decline:{d.number}", f"Decline #{d.number}: {summary}"),
            ]
        count = len(pending)
        self._choose(
            f"Disclosures of {t.ref}",
            choices,
            lambda key: self._disclosure_decision(t, key),
            note=f"{count} request{'' if count == 1 else 's'} await{'s' if count == 1 else ''} "
            "your decision.",
            highlight=choices[1].key,
        )

    def _disclosure_decision(self, t: CaseworkTarget, key: str) -> None:
        if key == "request":
            self._request(t)
            return
        verb, number = key.split(":")
        d = next(d for d in t.view.disclosures if str(d.number) == number)
        if verb == "approve":
            self._confirm_then_run(
                f"Approve disclosure {number} of {t.ref}",
                f"Disclose {_disclosure_summary(d)} ({d.basis_label}) now?",
                CaseworkCommand("approve", t.case_id, t.ref, number),
            )
        else:
            self._reason_then_run(
                f"Decline disclosure {number} of {t.ref}",
                "Why it is declined",
                CaseworkCommand("decline", t.case_id, t.ref, number),
            )

    def _request(self, t: CaseworkTarget) -> None:
        verification = t.view.verification
        missing = ", ".join(verification.missing)
        recipients = tuple(p.name for p in t.choices.recipients)
        keys = tuple(b.key for b in t.choices.bases)
        emergency = next((b.key for b in t.choices.bases if b.emergency), "")
        fields = [
            FormField("data", "Data", required=True, placeholder=DATA_HELP),
            FormField(
                "to",
                "To (partner)",
                required=True,
                placeholder=", ".join(recipients) or "no recipient in the partner directory yet",
                choices=recipients,
            ),
            FormField(
                "basis",
                "Legal basis",
                required=True,
                value=emergency if verification.required else "",
                placeholder=", ".join(keys),
                choices=keys,
            ),
            FormField("accounts", "Accounts", required=True, value="1", integer=True),
        ]
        warning = False
        if self.supervising:
            note = "As a supervisor, your disclosure is recorded as made."
            if not verification.complete:
                fields.append(
                    FormField(
                        "override_reason",
                        "Why it cannot wait",
                        required=verification.required,
                        placeholder=(
                            "verification is incomplete: why the disclosure cannot wait"
                            if verification.required
                            else "only on an emergency basis while verification is incomplete"
                        ),
                    )
                )
                if verification.required:
                    note += (
                        f" Verification is incomplete (missing {missing}): say why it cannot wait."
                    )
                    warning = True
        else:
            note = "Your request waits for a supervisor's approval."
            if verification.required and not verification.complete:
                note = (
                    f"Verification is incomplete (missing {missing}): only a supervisor may "
                    "record a disclosure before it is complete. Press V to verify."
                )
                warning = True
        self._form(
            CaseworkCommand("disclose", t.case_id, t.ref),
            f"Disclosure on {t.ref}",
            fields,
            note=note,
            warning=warning,
        )

    # -- F: legal clocks -------------------------------------------------------------

    def legal_clock(self) -> None:
        if (t := self.screen.casework_target()) is None:
            return
        choices: list[Choice] = []
        for clock in t.view.clocks:
            if clock.kind == ClockKind.DEADLINE and clock.running:
                choices.append(Choice(f"file:{clock.name}", f"File the report: {clock.label}"))
            if clock.kind == ClockKind.HOLD and clock.running and clock.extensions_left > 0:
                choices.append(
                    Choice(f"extend:{clock.name}", f"Extend on a renewed request: {clock.label}")
                )
            if self.supervising and clock.state != ClockState.DONE:
                choices.append(Choice(f"waive:{clock.name}", f"Waive: {clock.label}"))
        if not choices:
            what = (
                "no legal clock to file, extend or waive"
                if t.view.clocks
                else f"no legal clocks ({t.view.category})"
            )
            self.screen.notify(f"{t.ref} has {what}.", title="Nothing to do", severity="warning")
            return
        if len(choices) == 1:
            self._clock_action(t, choices[0].key)
            return
        self._choose(f"Legal clocks of {t.ref}", choices, lambda key: self._clock_action(t, key))

    def _clock_action(self, t: CaseworkTarget, key: str) -> None:
        verb, name = key.split(":")
        clock = next(c for c in t.view.clocks if c.name == name)
        command = CaseworkCommand(verb, t.case_id, t.ref, name)
        if verb == "file":
            self._form(
                command,
                f"{t.ref}: {clock.label}",
                [
                    FormField(
                        "report_id",
                        "Report id",
                        required=True,
                        placeholder="the id the authority gave the report",
                    ),
                    FormField(
                        "filed_at",
                        "Filed",
                        placeholder="how long ago (20m) or a time with an offset; empty: now",
                    ),
                ],
            )
        elif verb == "extend":
            self._form(
                command,
                f"Extend {clock.label} on {t.ref}",
                [FormField("note", "Renewed request", placeholder="its date and sender")],
                note=f"Extends the hold by its extension ({clock.extensions_left} left).",
            )
        else:
            self._form(
                command,
                f"Waive {clock.label} on {t.ref}",
                [FormField("reason", "Reason", required=True, placeholder="why it ends early")],
            )

    # -- K: containment ----------------------------------------------------------------

    def contain(self) -> None:
        if (t := self.screen.casework_target()) is None:
            return
        steps = t.view.containment
        if all(step.done for step in steps):
            what = "every containment step is done" if steps else "no containment checklist"
            self.screen.notify(f"{t.ref}: {what}.", title="Nothing to do", severity="warning")
            return
        choices = [
            Choice(
                step.step,
                ("☑ " if step.done else "☐ ")
                + step.label
                + (f"  ({step.done_by})" if step.done else ""),
                disabled=step.done,
            )
            for step in steps
        ]
        self._choose(
            f"Containment of {t.ref}",
            choices,
            lambda name: self._contain_step(t, name),
            highlight=next(step.step for step in steps if not step.done),
        )

    def _contain_step(self, t: CaseworkTarget, name: str) -> None:
        step = next(s for s in t.view.containment if s.step == name)
        self._form(
            CaseworkCommand("contain", t.case_id, t.ref, name),
            f"{t.ref}: {step.label}",
            [
                FormField(
                    "reference",
                    "Hash reference",
                    required=step.needs_reference,
                    placeholder="sha256:..." + ("" if step.needs_reference else " (optional)"),
                ),
                FormField("note", "Note", placeholder="optional"),
            ],
        )

    # -- I: action items -------------------------------------------------------------------

    def action_items(self) -> None:
        if (t := self.screen.casework_target()) is None:
            return
        open_items = [a for a in t.view.actions if a.status == "open"]
        if not open_items:
            self._add_action(t)
            return
        choices = [Choice("add", "Add an action item")]
        for item in open_items:
            choices += [
                Choice(f"action.done:{item.id}", f"Done: #{item.id} {item.title}"),
                Choice(f"action.cancel:{item.id}", f"Cancel: #{item.id} {item.title}"),
            ]
        self._choose(f"Action items of {t.ref}", choices, lambda key: self._action_choice(t, key))

    def _action_choice(self, t: CaseworkTarget, key: str) -> None:
        if key == "add":
            self._add_action(t)
            return
        verb, item_id = key.split(":")
        command = CaseworkCommand(verb, t.case_id, t.ref, item_id)
        if verb == "action.done":
            self._run(command)
            return
        title = next(a.title for a in t.view.actions if str(a.id) == item_id)
        self._confirm_then_run(
            f"Cancel action item {item_id} of {t.ref}", f"Cancel “{title}”?", command
        )

    def _add_action(self, t: CaseworkTarget) -> None:
        handles = self.screen.vigil.handles
        self._form(
            CaseworkCommand("action.add", t.case_id, t.ref),
            f"Action item on {t.ref}",
            [
                FormField("title", "Title", required=True, placeholder="what must be done"),
                FormField(
                    "owner",
                    "Owner",
                    value=self.screen.vigil.profile.handle,
                    placeholder="a responder's handle",
                    choices=handles,
                ),
                FormField(
                    "partner",
                    "Or a partner team",
                    placeholder=(
                        f"a team of the directory: {', '.join(t.choices.teams)}"
                        if t.choices.teams
                        else "none in the directory"
                    ),
                    choices=t.choices.teams,
                ),
                FormField("due", "Due", placeholder="4h, 2d or a time with an offset; empty: none"),
            ],
            note="Give one owner: a responder, or a partner team (then clear the owner).",
        )
