"""Streamlit entry point: `API_URL=http://127.0.0.1:8000 uv run streamlit run frontend/app.py`.

The project is an installed package (`uv sync` installs it in editable mode; the UI image sets `PYTHONPATH=/app`),
so `frontend` and `ml` import the same way here, in the tests and in the image.
"""

from frontend.ui import main

main()
