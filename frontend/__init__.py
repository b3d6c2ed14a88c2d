"""Streamlit interface: a form built from `ml.schema` that asks the prediction service over HTTP."""
