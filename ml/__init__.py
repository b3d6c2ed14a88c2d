"""The diabetes-status model.

- `ml.schema` (the 21 features and 3 classes), `ml.manifest` (the artifact's manifest) and `ml.contract` (the API's
  request, response and error models): the shared vocabulary, pydantic only.
- `ml.inference`: what serving needs (artifact, loader, post-processing, Predictor).
- `ml.training`: what only training needs (data, synthetic, download, train, tuning, evaluate, export, tracking).
- `ml.train`, `ml.predict`, `ml.download`, `ml.synthetic`: the command lines (`python -m ml.train`, ...).
"""
