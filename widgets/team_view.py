"""The desk's team drawn: each responder's role, zone, whether they are on call now, how
they are reached and when, and each schedule's support hours.

The widgets render a `TeamView` (`widgets.views`) and nothing else: the words arrive
worked out by the presenter (`app.services.team.roster`). Contacts are named by kind and
name only: an Apprise or webhook URL holds its service's secrets and never reaches a
screen.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Static

from widgets.views import TeammateView, TeamView

# --- widgets ------------------------------------------------------------------------


class TeammateCard(Vertical):
    """One person: a heading line, then their contacts, rules and quiet hours."""

    def __init__(self, person: TeammateView) -> None:
        super().__init__(classes="team-card")
        self.person = person

    def compose(self) -> ComposeResult:
        person = self.person
        with Horizontal(classes="team-heading"):
            yield Static(person.handle, classes="team-handle", markup=False)
            yield Static(person.name, classes="team-name", markup=False)
            yield Static(person.role, classes=f"team-role -{person.role}", markup=False)
            yield Static(person.zone, classes="team-zone", markup=False)
            on_call = "on call: " + ", ".join(person.on_call) if person.on_call else "off call"
            classes = "team-on-call" + (" -now" if person.on_call else "")
            yield Static(on_call, classes=classes, markup=False)
        yield _line("contacts", ", ".join(person.contacts) or "none")
        for rule in person.rules:
            yield _line(rule.urgency, rule.text)
        yield _line("quiet hours", person.quiet_hours)


def _line(label: str, text: str) -> Horizontal:
    return Horizontal(
        Static(label, classes="team-label", markup=False),
        Static(text, classes="team-text", markup=False),
        classes="team-line",
    )


class TeamBoard(VerticalScroll):
    """The schedules and then one card per person, in handle order."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view: TeamView | None = None

    def compose(self) -> ComposeResult:
        yield Static("Reading the team…", classes="hint", markup=False)

    async def show(self, view: TeamView) -> None:
        self.view = view
        await self.remove_children()
        widgets: list[Static | Horizontal | Vertical] = [
            Static("Schedules", classes="section-title", markup=False)
        ]
        widgets += [
            Horizontal(
                Static(line.name, classes="team-label", markup=False),
                Static(line.on_call, classes="team-schedule-who", markup=False),
                Static(line.support, classes="team-text", markup=False),
                classes="team-line",
            )
            for line in view.schedules
        ] or [Static("No schedules.", classes="hint", markup=False)]
        widgets.append(Static("Responders", classes="section-title", markup=False))
        widgets += [TeammateCard(person) for person in view.people]
        await self.mount_all(widgets)
