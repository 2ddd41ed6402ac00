"""``python -m lamina.plugins.aws``: what a SageMaker job's container runs (see :mod:`.container`)."""

import sys

from .container import main

sys.exit(main())
