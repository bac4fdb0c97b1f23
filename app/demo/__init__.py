"""The demo desk: a realistic team and a month of cases, for trying Vigil out."""
