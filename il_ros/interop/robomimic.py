"""Export a dataset to robomimic's HDF5 format (one file, every episode a ``demo_N`` group).

Layout written (robomimic's "Dataset Structure", docs/datasets/overview.md, and what its
``SequenceDataset`` reads)::

    data                      attrs: total (frames over all demos), env_args (JSON string)
      demo_0                  attrs: num_samples, il_ros_episode (source episode index),
                              il_ros_success (1/0; -1 unknown), il_ros_meta (episode meta, JSON)
        obs/<camera>_image    (T, H, W, 3) uint8, from image/<camera>
        obs/joint_pos         (T, J) as stored (float32 from conversion)
        obs/joint_vel         (T, J) when the dataset has it; any other per-frame key the
                              same way ('/' becomes '_')
        next_obs/<key>        obs shifted by one frame, the last frame repeated (virtual
                              datasets mapping onto obs/: no second copy of the images)
        actions               (T, A) the 'action' key as stored
        rewards               (T,) float32: 1.0 at the last frame of a successful episode
        dones                 (T,) uint8: 1 at the last frame
        il_ros_labels         (T,) uint8 label codes; attr label_names (JSON list)
        il_ros_time           (T,) float64 seconds of each frame
      demo_1 ...
    mask/train, mask/valid    demo names (bytes), a deterministic split

Decisions:

- **Numbering.** The exported episodes are ``demo_0 .. demo_{n-1}`` in the order given
  (robomimic sorts demos by that number); ``il_ros_episode`` names the source episode.
- **Labels beside the actions, not in obs.** robomimic feeds every obs key it is told to
  into the policy, and the control source is not something a policy may see at run time. A
  demo-level dataset is what robomimic calls a "dataset key" (``train.dataset_keys``), so
  ``SequenceDataset(..., dataset_keys=('actions', 'il_ros_labels'))`` hands the labels out
  per sample, as it does rewards and dones (e.g. to weight or drop intervention frames).
- **No ``states``.** robomimic's ``states`` are flattened MuJoCo states for resetting a
  robosuite env; the store holds no simulator state, and the format says to leave it out
  or fill it with dummies for other environments. It is left out.
- **Actions are not rescaled.** robomimic's docs ask for actions in [-1, 1]; ours are joint
  targets in radians. Rescaling here would make the file disagree with the source, so it
  is left to robomimic's loader: ``train.action_config = {"actions": {"normalization":
  "min_max"}}`` (robomimic 0.4 and later).
- **env_args** holds ``env_name`` (the task), ``type`` 2 (robomimic's ``EnvType.GYM_TYPE``:
  robomimic cannot make il_ros's sim, and for this type the attempt fails with gym's
  plain "no such environment"; training never makes an env unless rollouts are on),
  ``env_kwargs`` (the arguments of il_ros's ``make_env``: robot, cameras, image_size,
  control_dt) and ``il_ros`` (the source dataset, robot description, joint and action
  names, label names and the obs key of each store key).
- **Validation split.** ``round(valid_fraction * n)`` demos (at least one when the
  fraction is above 0 and there are two or more), spread evenly over the episode order so
  that early and late recordings both validate; the same input always gives the same split.
- **Atomic.** The file is written as ``.<name>.tmp`` beside the target, fsynced and renamed:
  an interrupted export leaves any earlier file whole.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from il_ros import keys
from il_ros.data.store import Dataset, is_image_key, LABEL_KEY, StoreError, TIME_KEY
from il_ros.fsio import atomic_write

FORMAT = 'il_ros.robomimic/1'
ENV_TYPE_GYM = 2          # robomimic.envs.env_base.EnvType.GYM_TYPE
LABELS_KEY = 'il_ros_labels'
TIME_OUT_KEY = 'il_ros_time'


class RobomimicExportError(ValueError):
    """The dataset cannot be exported; the message names the path and the field."""


def obs_key(key: str) -> str:
    """The robomimic obs name of a store key: ``image/front`` -> ``front_image``."""
    if is_image_key(key):
        return key[len(keys.OBS_IMAGE_PREFIX):] + '_image'
    return key.replace('/', '_')


def split_train_valid(n: int, valid_fraction: float) -> tuple[list[int], list[int]]:
    """Deterministic (train, valid) demo indices of ``n`` demos (see the module docstring)."""
    k = int(round(valid_fraction * n))
    if valid_fraction > 0 and n >= 2:
        k = max(k, 1)
    k = min(k, n - 1) if n >= 2 else 0
    valid = sorted({min(n - 1, int((i + 0.5) * n / k)) for i in range(k)}) if k else []
    train = [i for i in range(n) if i not in set(valid)]
    return train, valid


def _env_args(ds: Dataset, metas: list[dict], obs_names: dict[str, str]) -> dict:
    first = metas[0] if metas else {}
    robot = first.get('robot') if isinstance(first.get('robot'), dict) else None
    tasks = sorted({str(m.get('task')) for m in metas if m.get('task')})
    cams = [k[len(keys.OBS_IMAGE_PREFIX):] for k in ds.keys if is_image_key(k)]
    size = list(ds.shapes[keys.image_key(cams[0])][:2]) if cams else None
    rate = first.get('rate_hz')
    return {
        'env_name': tasks[0] if len(tasks) == 1 else ('+'.join(tasks) or 'il_ros'),
        'type': ENV_TYPE_GYM,
        'env_kwargs': {'robot': robot.get('name') if robot else None, 'cameras': cams,
                       'image_size': size,
                       'control_dt': 1.0 / float(rate) if rate else None},
        'il_ros': {'format': FORMAT, 'source_dataset': str(ds.path.resolve()),
                   'tasks': tasks, 'robot': robot,
                   'joint_names': first.get('joint_names'),
                   'action_names': first.get('action_names'),
                   'label_names': list(ds.label_names), 'obs_keys': obs_names,
                   'rate_hz': rate},
    }


def _write(tmp: Path, ds: Dataset, episodes: list[int], train: list[int], valid: list[int],
           progress: bool) -> int:
    from tqdm import tqdm
    obs_names = {k: obs_key(k) for k in ds.keys if k not in (keys.ACTION, LABEL_KEY, TIME_KEY)}
    metas = [ds.meta(e) for e in episodes]
    total = 0
    with h5py.File(tmp, 'w', track_order=True) as f:
        data = f.create_group('data', track_order=True)
        for i, ep in enumerate(tqdm(episodes, desc='robomimic', unit='episode',
                                    disable=not progress)):
            frames = ds.episode(ep)
            n = int(ds.episode_lengths[ep])
            meta = metas[i]
            g = data.create_group(f'demo_{i}', track_order=True)
            g.attrs['num_samples'] = n
            g.attrs['il_ros_episode'] = int(ep)
            success = meta.get('success')
            g.attrs['il_ros_success'] = -1 if success is None else int(bool(success))
            g.attrs['il_ros_meta'] = json.dumps(meta, sort_keys=True)
            for key, name in obs_names.items():
                arr = frames[key]
                image = is_image_key(key)
                g.create_dataset(f'obs/{name}', data=arr, track_times=False,
                                 chunks=(1,) + arr.shape[1:] if image else None,
                                 compression='gzip' if image else None,
                                 compression_opts=4 if image else None)
                layout = h5py.VirtualLayout(shape=arr.shape, dtype=arr.dtype)
                src = h5py.VirtualSource('.', f'data/demo_{i}/obs/{name}', shape=arr.shape)
                if n > 1:
                    layout[:n - 1] = src[1:]
                layout[n - 1:] = src[n - 1:]
                g.create_virtual_dataset(f'next_obs/{name}', layout)
            g.create_dataset('actions', data=frames[keys.ACTION], track_times=False)
            rewards = np.zeros(n, np.float32)
            rewards[-1] = 1.0 if success else 0.0
            dones = np.zeros(n, np.uint8)
            dones[-1] = 1
            g.create_dataset('rewards', data=rewards, track_times=False)
            g.create_dataset('dones', data=dones, track_times=False)
            if LABEL_KEY in frames:
                d = g.create_dataset(LABELS_KEY, data=frames[LABEL_KEY], track_times=False)
                d.attrs['label_names'] = json.dumps(list(ds.label_names))
            if TIME_KEY in frames:
                g.create_dataset(TIME_OUT_KEY, data=frames[TIME_KEY], track_times=False)
            total += n
        data.attrs['total'] = total
        data.attrs['env_args'] = json.dumps(_env_args(ds, metas, obs_names))
        for name, idx in (('train', train), ('valid', valid)):
            f.create_dataset(f'mask/{name}', data=np.array([f'demo_{i}' for i in idx],
                                                            dtype='S'))
    return total


def export_robomimic(dataset_dir, out_path, *, episodes=None, valid_fraction=0.1,
                     progress=True) -> dict:
    """Write the dataset at ``dataset_dir`` as robomimic HDF5 at ``out_path``.

    ``episodes``: source episode indices to export, in that order (default: all).
    ``valid_fraction``: share of demos under ``mask/valid`` (the rest under ``mask/train``).
    Returns ``{'out', 'demos', 'frames', 'train', 'valid', 'obs_keys', 'env_args'}``.
    Raises RobomimicExportError (a ValueError) naming the file and field on bad input.
    """
    out = Path(out_path)
    try:
        ds = Dataset(dataset_dir)
    except StoreError as e:
        raise RobomimicExportError(str(e)) from None
    try:
        missing = [k for k in (keys.ACTION,) if k not in ds.keys]
        if missing:
            raise RobomimicExportError(f'{ds.path}: the dataset has no {missing[0]!r} key '
                                       f'(keys: {ds.keys})')
        if ds.num_episodes == 0:
            raise RobomimicExportError(f'{ds.path}: the dataset has no episodes')
        if episodes is None:
            episodes = list(range(ds.num_episodes))
        else:
            episodes = [int(e) for e in episodes]
            bad = [e for e in episodes if not 0 <= e < ds.num_episodes]
            if bad:
                raise RobomimicExportError(
                    f'{ds.path}: episode {bad[0]} out of range: the dataset has '
                    f'{ds.num_episodes} episode(s) (0..{ds.num_episodes - 1})')
            if not episodes:
                raise RobomimicExportError(f'{ds.path}: no episodes selected')
            dup = sorted({e for e in episodes if episodes.count(e) > 1})
            if dup:
                raise RobomimicExportError(f'{ds.path}: episode(s) {dup} selected twice')
        if not 0 <= float(valid_fraction) < 1:
            raise RobomimicExportError(f'valid_fraction must be in [0, 1), got '
                                       f'{valid_fraction}')
        if out.is_dir():
            raise RobomimicExportError(f'{out}: is a folder; give the .hdf5 file to write')
        out.parent.mkdir(parents=True, exist_ok=True)
        train, valid = split_train_valid(len(episodes), float(valid_fraction))
        result = {}

        def write(tmp: Path) -> None:
            result['frames'] = _write(tmp, ds, episodes, train, valid, progress)
        atomic_write(out, write)
        obs_names = {k: obs_key(k) for k in ds.keys
                     if k not in (keys.ACTION, LABEL_KEY, TIME_KEY)}
        with h5py.File(out, 'r') as f:
            env_args = json.loads(f['data'].attrs['env_args'])
    finally:
        ds.close()
    return {'out': str(out), 'demos': len(episodes), 'frames': result['frames'],
            'train': [f'demo_{i}' for i in train], 'valid': [f'demo_{i}' for i in valid],
            'obs_keys': obs_names, 'env_args': env_args}
