"""Well-being levels A–E of the Digital Family Card (SPEC §6): methodology as data, batch,
explanation and comparison."""
