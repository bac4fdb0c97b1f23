"""The console's themes: dark (default), light, and high contrast for long night shifts.

Each is a Textual `Theme`; the app registers them in `on_mount`. Beyond Textual's own
variables the styles use `$sev1`..`$sev4`, `$sla-breach`, `$sla-warn`, `$paged-me` and
`$sensitive`: `THEME_VARIABLE_DEFAULTS` gives every one a value, and a theme may override
any of them in its `variables`.
"""

from __future__ import annotations

from pathlib import Path

from textual.theme import Theme

STYLES = Path(__file__).resolve().parent
"""The folder of the `.tcss` files."""

CONSOLE_CSS_PATHS: tuple[Path, ...] = (
    STYLES / "console.tcss",
    STYLES / "case_detail.tcss",
    STYLES / "dialogs.tcss",
    STYLES / "casework.tcss",
    STYLES / "urgency.tcss",
)
"""Stylesheets of the console app, in load order (the queue table loads its own)."""

THEME_VARIABLE_DEFAULTS: dict[str, str] = {
    "sev1": "#ff5f5f",
    "sev2": "#ffaf3f",
    "sev3": "#5fafff",
    "sev4": "#9e9e9e",
    "sla-breach": "#ff5f5f",
    "sla-warn": "#ffaf3f",
    "paged-me": "#ffaf3f",
    "sensitive": "#d787ff",
}

DEFAULT_THEME = "vigil-dark"

VIGIL_DARK = Theme(
    name="vigil-dark",
    primary="#3d8bfd",
    secondary="#2a4d7a",
    accent="#22b8cf",
    warning="#f2a531",
    error="#f05454",
    success="#3fb950",
    foreground="#dde3ea",
    background="#0d1117",
    surface="#151b23",
    panel="#1f2731",
    dark=True,
    variables={
        "sev1": "#ff6b6b",
        "sev2": "#f2a531",
        "sev3": "#58a6ff",
        "sev4": "#8b949e",
        "sla-breach": "#ff6b6b",
        "sla-warn": "#f2a531",
        "paged-me": "#f2a531",
        "sensitive": "#d2a8ff",
        "footer-key-foreground": "#58a6ff",
    },
)

VIGIL_LIGHT = Theme(
    name="vigil-light",
    primary="#0b5cad",
    secondary="#5a7fa8",
    accent="#006d77",
    warning="#9a5b00",
    error="#b42318",
    success="#1a7f37",
    foreground="#1f2328",
    background="#f6f8fa",
    surface="#ffffff",
    panel="#e6ebf1",
    dark=False,
    variables={
        "sev1": "#b42318",
        "sev2": "#9a5b00",
        "sev3": "#0b5cad",
        "sev4": "#57606a",
        "sla-breach": "#b42318",
        "sla-warn": "#9a5b00",
        "paged-me": "#9a5b00",
        "sensitive": "#8250df",
        "footer-key-foreground": "#0b5cad",
        # Textual's own (the foreground at 60%) reads at 4.2:1 here, under WCAG AA.
        "foreground-muted": "#59636e",
    },
)

VIGIL_HIGH_CONTRAST = Theme(
    name="vigil-high-contrast",
    primary="#ffff00",
    secondary="#00ffff",
    accent="#00ffff",
    warning="#ffff00",
    error="#ff3030",
    success="#00ff00",
    foreground="#ffffff",
    background="#000000",
    surface="#000000",
    panel="#1a1a1a",
    dark=True,
    luminosity_spread=0.25,
    text_alpha=1.0,
    variables={
        "sev1": "#ff3030",
        "sev2": "#ffff00",
        "sev3": "#00ffff",
        "sev4": "#ffffff",
        "sla-breach": "#ff3030",
        "sla-warn": "#ffff00",
        "paged-me": "#ffff00",
        "sensitive": "#ff80ff",
        "footer-key-foreground": "#ffff00",
        "block-cursor-background": "#ffff00",
        "block-cursor-foreground": "#000000",
    },
)

THEMES: tuple[Theme, ...] = (VIGIL_DARK, VIGIL_LIGHT, VIGIL_HIGH_CONTRAST)
"""Every console theme, in the order the command palette offers them."""

THEME_LABELS: dict[str, str] = {
    VIGIL_DARK.name: "Dark",
    VIGIL_LIGHT.name: "Light",
    VIGIL_HIGH_CONTRAST.name: "High contrast",
}
