"""LeRobot v3 datasets out of and into the il_ros store (``il-ros export/import``).

The layout follows LeRobot's own writer as read in huggingface/lerobot 0.6.2 (commit
7427f318, ``src/lerobot/datasets/utils.py``, ``feature_utils.py``, ``dataset_metadata.py``,
``dataset_writer.py``, ``compute_stats.py`` and ``scripts/convert_dataset_v21_to_v30.py``),
codebase_version ``v3.0``::

    meta/info.json                       codebase_version, robot_type, fps, total_episodes,
                                         total_frames, total_tasks, chunks_size,
                                         data_files_size_in_mb, video_files_size_in_mb,
                                         data_path / video_path templates, features
                                         ({dtype, shape, names[, info]}), splits
    meta/stats.json                      per feature: min, max, mean, std, count, q01 .. q99
    meta/tasks.parquet                   task_index, with the task string as (pandas) index
    meta/episodes/chunk-000/file-000.parquet
                                         one row per episode: episode_index, tasks, length,
                                         data/chunk_index, data/file_index,
                                         dataset_from_index, dataset_to_index,
                                         videos/<key>/{chunk_index, file_index,
                                         from_timestamp, to_timestamp}, stats/<key>/<stat>,
                                         meta/episodes/{chunk_index, file_index}
    data/chunk-000/file-000.parquet      one row per frame, every non-video feature
    videos/observation.images.<camera>/chunk-000/file-000.mp4
                                         every episode's frames of that camera, one after
                                         the other; an episode is [from_timestamp,
                                         to_timestamp) of the file

This module is the entry point; the format's names, the feature map, LeRobot's stats rules
and the metadata readers are in il_ros.interop.lerobot_format, the writer in
il_ros.interop.lerobot_export, the reader in il_ros.interop.lerobot_import (imported on
use).

A file rolls over to the next ``file-NNN`` (and ``chunk-NNN`` after ``chunks_size`` files)
at an episode boundary once it holds ``data_files_size_in_mb`` / ``video_files_size_in_mb``,
as LeRobot does. A video's size is counted in the bytes muxed so far; an encoder that holds
frames back (AV1, h264) is a few frames behind, so a file can end slightly over the limit.

Export (:func:`export_lerobot`) maps il_ros keys to LeRobot's conventions:
``joint_pos`` -> ``observation.state``, ``joint_vel`` -> ``observation.velocity``,
``action`` -> ``action``, ``image/<cam>`` -> ``observation.images.<cam>`` (a ``video``
feature), and adds LeRobot's ``timestamp`` (frame_index / fps, from the episode start),
``frame_index``, ``episode_index``, ``index`` and ``task_index``. Our own per-frame data
travels as extra features: ``il_ros.label`` (int64 codes of il_ros.keys.LABEL_NAMES; the
names are in the feature's ``info.label_names``), ``il_ros.success`` (int64, the episode's
success on every frame: 1, 0, or -1 where it was not recorded) and ``il_ros.time`` (the
original tick times, float64). Each episode's full il_ros metadata is kept as JSON in the
episodes table's ``il_ros.meta`` column, so an export imports back to the same episodes.

Decisions:

- **Video.** One MP4 stream per camera, encoded with PyAV: LeRobot's default codec
  ``libsvtav1`` (AV1) when this PyAV has it, else h264, hevc or mpeg4; ``yuv420p``, GOP 2
  and CRF 30, LeRobot's recording defaults (a keyframe every 2 frames keeps random access
  cheap); mpeg4 has no CRF and gets 2 bits per pixel. Frame k of a file has pts k at time
  base 1/fps, so frame times are exact. yuv420p needs even image sizes; an odd one is
  refused.
- **Stats** are computed as LeRobot computes them: per episode over the frames (images per
  channel in [0, 1], from at most 100 evenly spaced frames, downsampled by striding to about
  150 px), quantiles q01/q10/q50/q90/q99; the dataset stats aggregate the episodes the way
  LeRobot's ``aggregate_stats`` does (count-weighted mean and pooled variance; the lowest
  lower and highest upper quantiles).
- **fps** is LeRobot's integer frame rate: the episodes' ``rate_hz`` (or ``fps``), else the
  step of their ``time``; the ``time`` steps must match it.
- **Atomic.** The export is written into a temporary folder beside ``out_dir`` and renamed
  into place, so a failed export leaves nothing half-written.

Import (:func:`import_lerobot`) reads a local LeRobot v3 folder (nothing is downloaded)
through a feature map (``config/interop/lerobot_map.yaml``; :class:`LeRobotMap`) and
appends its episodes to an il_ros dataset. Images keep their native size (nothing is
resized or cropped); each episode records ``preprocess`` with that size, so a policy trained
on it fits live camera frames to it. Every problem (a missing feature, a wrong shape, NaN,
a broken or short video, timestamps that do not step at the dataset's fps) raises
:class:`LeRobotFormatError` naming the file and the field. Re-importing the same folder
skips the episodes already in the dataset (each has a ``source_id``).
"""
from __future__ import annotations

from il_ros.interop.lerobot_format import (  # noqa: F401 - the public names of the format
    CODEBASE_VERSION, CRF, DATA_FILES_SIZE_IN_MB, LeRobotFormatError, LeRobotMap,
    load_lerobot_map, pick_vcodec, VCODECS, VIDEO_FILES_SIZE_IN_MB)


# ---- entry points (the work is in lerobot_export / lerobot_import) -------------------------
def export_lerobot(dataset_dir, out_dir, *, fps=None, episodes=None, task=None, vcodec=None,
                   crf: int = CRF, progress: bool = True,
                   data_files_size_in_mb: float = DATA_FILES_SIZE_IN_MB,
                   video_files_size_in_mb: float = VIDEO_FILES_SIZE_IN_MB) -> dict:
    """Write the il_ros dataset at ``dataset_dir`` as a LeRobot v3 dataset in ``out_dir``.

    ``episodes``: indices to export (default all), renumbered from 0 in that order.
    ``task``: the task string of every episode (default: each episode's meta ``task``, else
    the dataset folder's name). ``vcodec``: a PyAV encoder name (default: the best of
    VCODECS available). ``out_dir`` must not exist or be empty. Returns a summary dict
    (out, episodes, frames, fps, cameras, vcodec, tasks, seconds). Raises
    LeRobotFormatError (bad input; nothing is written) or StoreError (no dataset).
    """
    from il_ros.interop.lerobot_export import export
    return export(dataset_dir, out_dir, fps=fps, episodes=episodes, task=task, vcodec=vcodec,
                  crf=crf, progress=progress, data_files_size_in_mb=data_files_size_in_mb,
                  video_files_size_in_mb=video_files_size_in_mb)


def import_lerobot(src_dir, out_dataset, *, mapping=None, progress: bool = True) -> dict:
    """Append the episodes of the local LeRobot v3 dataset ``src_dir`` to ``out_dataset``.

    ``mapping``: a LeRobotMap, a path to its YAML, or None (the defaults). Episodes already
    imported into ``out_dataset`` (same source_id) are skipped. Returns a summary dict (out,
    episodes, skipped, frames, fps, cameras, warnings, seconds). Raises LeRobotFormatError
    naming the file and field, ConfigError for a bad map, StoreError for a bad dataset.
    """
    from il_ros.interop.lerobot_import import import_dataset
    return import_dataset(src_dir, out_dataset, mapping=mapping, progress=progress)
