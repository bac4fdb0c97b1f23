"""Services: the unit of work every change passes through, and each area's service."""
