"""The backends hwprune ships, registered in ``backends.registry`` on import (C first:
registration order is the order an export writes and regenerates them).

Import this module wherever the registry must be whole: the export (``pipeline``), the
command line's ``--backend`` choices, and every caller of ``harness.regenerate.check_code``
(which refuses a folder whose code no registered backend regenerates).
"""

import hwprune.backends.c.backend  # noqa: F401
import hwprune.backends.hls4ml.backend  # noqa: F401
import hwprune.backends.rtl.backend  # noqa: F401
