"""What serving needs: the artifact format, where a model comes from, post-processing and the Predictor.

The service image ships this subpackage with `ml.schema`, `ml.manifest` and `ml.contract`, and nothing from
`ml.training`.
"""
