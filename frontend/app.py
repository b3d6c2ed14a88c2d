"""Streamlit entry point: `API_URL=http://127.0.0.1:8000 uv run streamlit run frontend/app.py`.

`streamlit run` puts only this file's folder on `sys.path`; the project root is added so that `frontend` and
`ml.schema` import the same way here, in the tests and in the UI image.
"""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from frontend.ui import main  # noqa: E402  (needs the path above)

main()
