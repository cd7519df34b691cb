"""``python -m il_ros.dagger --task ...``: the same as ``il-ros dagger --task ...``."""
import sys

from il_ros.dagger.cli import main

sys.exit(main())
