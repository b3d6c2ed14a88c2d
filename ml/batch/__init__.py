"""Batch scoring: whole files on one machine in bounded memory (`ml.batch.scoring`), tables on Spark (`ml.batch.spark`).

It reads and writes with pyarrow (and pandas for the checks `ml.training.data` shares with training), so it lives
apart from `ml.inference`: the service image ships neither. The command lines are `python -m ml.predict` and
`python -m ml.predict_spark`.
"""
