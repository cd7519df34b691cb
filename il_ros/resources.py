"""Find the package's data folders (sim/, config/, launch/) in a checkout or an install."""
from __future__ import annotations

import os
import sys
from pathlib import Path

_PACKAGE = 'il_ros'


def share_dir() -> Path:
    """The folder holding sim/, config/ and launch/.

    In a checkout (or an editable install) that is the repository root. Under colcon or a
    regular install it is ``<prefix>/share/il_ros``.
    """
    repo = Path(__file__).resolve().parent.parent
    if (repo / 'package.xml').is_file() and (repo / 'config').is_dir():
        return repo
    env = os.environ.get('IL_ROS_SHARE')
    candidates = [Path(env)] if env else []
    try:  # a ROS install knows where its packages live
        from ament_index_python.packages import get_package_share_directory
        candidates.append(Path(get_package_share_directory(_PACKAGE)))
    except Exception:  # noqa: BLE001 - ament_index is optional outside ROS
        pass
    candidates.append(Path(sys.prefix) / 'share' / _PACKAGE)
    for c in candidates:
        if (c / 'config').is_dir():
            return c
    raise FileNotFoundError(
        f'il_ros data folders not found; looked in {repo} and {[str(c) for c in candidates]}. '
        'Set IL_ROS_SHARE to the folder that holds config/ and sim/.')


def sim_asset(name: str) -> Path:
    """Path of an MJCF file or asset under sim/."""
    p = share_dir() / 'sim' / name
    if not p.exists():
        raise FileNotFoundError(f'sim asset {name!r} not found at {p}')
    return p


def config_file(name: str) -> Path:
    """Path of a file under config/."""
    p = share_dir() / 'config' / name
    if not p.exists():
        raise FileNotFoundError(f'config file {name!r} not found at {p}')
    return p
