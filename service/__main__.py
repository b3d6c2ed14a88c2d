"""`python -m service`: start the prediction service (`service.server`)."""

from service.server import main

raise SystemExit(main())
