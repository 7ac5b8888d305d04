"""``python -m device`` is ``python -m device.bench``."""
import sys

from device.bench import main

sys.exit(main())
