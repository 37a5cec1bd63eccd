"""The scoring model (SPEC §7): hidden-income detection and the vulnerability & resilience score.

- `hidden_income`: a LightGBM model of a family's expected income from its assets, credit,
  spending and consumption; flags families whose declared income is far below it, explained.
- `score`: the 23 criteria (`criteria.yaml`), one SQL SELECT for the batch, `score_family` for one.
- `evaluate`: precision/recall of the hidden-income flags against the planted truth.
"""
