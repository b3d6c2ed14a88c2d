"""The diabetes-status model.

- `ml.schema` (the features and classes), `ml.manifest` (the artifact's manifest) and `ml.contract` (the API's
  request, response and error models): the shared vocabulary, pydantic only.
- `ml.inference`: what serving needs (artifact, loader, post-processing, Predictor).
- `ml.training`: what only training needs (data, synthetic_data, real_data, pipeline, tuning, evaluate, export,
  tracking); `ml.batch`: scoring whole files and tables.
- `ml.train`, `ml.predict`, `ml.download`, `ml.synthetic`: the command lines (`python -m ml.train`, ...).
"""
