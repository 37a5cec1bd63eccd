"""The API's routers, one per role (citizen, worker, analyst, auditor, integrator)."""
