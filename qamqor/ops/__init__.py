"""Operational services over the store: publishing runs, case work, offer delivery, appeals,
users and the access log."""
