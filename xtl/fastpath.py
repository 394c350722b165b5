"""Former home of the shared-prefix decoding kernel; now :mod:`xtl.engine.kernel`. Kept so that older imports work."""

from xtl.engine.kernel import *  # noqa: F401,F403
from xtl.engine.kernel import __all__  # noqa: F401
