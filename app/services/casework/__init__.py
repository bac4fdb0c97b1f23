"""Casework: legal clocks, verification, disclosures and containment of a case."""
