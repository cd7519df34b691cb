"""Datasets in other projects' formats: LeRobot v3 (``lerobot``) and robomimic HDF5.

Each submodule converts between one outside format and the il_ros dataset store
(il_ros.data.store); ``il-ros export`` and ``il-ros import`` call them. The submodules are
imported on use, so importing this package costs nothing.
"""
