"""Load il_ros's LeRobot and robomimic exports with the real lerobot and robomimic loaders.

    python bench/interop_check.py [--dataset DATASET] [--venv /tmp/il_ros_interop_venv]
                                  [--install-ffmpeg] [--torchvision auto|real|stub]
                                  [--keep DIR] [--json OUT.json]

Run it with the project's Python (the venv il_ros is installed in). It

1. makes a small dataset in a temporary folder (3 episodes of the sim's scripted lift
   expert, rendered in process: cameras front and wrist at 48x64, joint_pos, joint_vel,
   action, label, time, success), or takes ``--dataset``;
2. exports it with ``il-ros export --format lerobot`` and ``--format robomimic``;
3. makes a scratch venv (``--venv``, reused when its install plan is unchanged) with
   ``python3.11`` and installs lerobot and robomimic from the package index (see PLAN);
4. in that venv, loads the LeRobot export with ``LeRobotDataset(repo_id, root=EXPORT)``
   (HF_HUB_OFFLINE=1, HF_DATASETS_OFFLINE=1: nothing is downloaded) and the robomimic file
   with ``robomimic.utils.dataset.SequenceDataset`` (obs keys registered with
   ``ObsUtils.initialize_obs_utils_with_obs_specs``; images through robomimic's own
   ``ObsUtils.process_obs_dict``), and saves what they return for the first and last frame
   of the first and the last episode;
5. compares that here with the source dataset: episode and frame counts, state, velocity,
   action, label, success, frame and episode indices exactly; images as float [0, 1] CHW,
   mean absolute error in grey levels (<= 4 for LeRobot's AV1 video, 0 for robomimic).

Prints the install and export commands, a table and one JSON summary (also to ``--json``);
exit 0 when everything matches, 1 on any mismatch, 2 when a step could not run.

Why the scratch venv is installed the way it is (PLAN):

- lerobot 0.5 and later require Python >= 3.12; this machine's CPU torch wheel (torch
  2.13.0+cpu, the project's pin) is for Python 3.11, and the index's torch for 3.12 is the
  CUDA build. So Python 3.11 and lerobot 0.4.4, the newest release for 3.11. Its
  dataset format is codebase v3.0, the one il_ros writes.
- torch==2.13.0 is installed first and every later install gets ``-c`` a constraints file
  pinning it, so nothing can pull a CUDA torch.
- lerobot 0.4.4 declares torch<2.11, torchvision<0.26 and torchcodec<0.11, and robomimic
  0.3.0 declares egl_probe (a cmake build, used only to render robosuite envs). Both are
  installed with ``--no-deps``; what their dataset modules import is installed from
  bench/interop_check.txt, plus torchvision 0.28.0 (the release built for torch 2.13) and
  torchcodec 0.12.0 (for torch >= 2.11; the index's 0.14.0 and 0.17.0 link CUDA libraries,
  libtorch_cuda and libnvrtc, and do not load with the CPU torch).
- Video: lerobot 0.4.4 decodes with torchcodec, or with torchvision's VideoReader for its
  'pyav' backend, which torchvision 0.28 no longer has. torchcodec needs FFmpeg's shared
  libraries; ``--install-ffmpeg`` installs Debian's (libavcodec59 ...) with apt-get when
  torchcodec cannot load them.
- torchvision: the index's 0.28.0 does not import with the CPU torch ("operator
  torchvision::nms does not exist"). Both loaders import it, but neither uses it on these
  datasets (lerobot uses it for image transforms and the old decoder, robomimic for its
  vision encoders and crop randomizers). When the real one does not import
  (``--torchvision auto``) or with ``--torchvision stub``, a stub package is put on
  PYTHONPATH for the check only: every name in it raises NotImplementedError when called.
  The output says which one ran.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LEROBOT = 'lerobot==0.4.4'
ROBOMIMIC = 'robomimic==0.3.0'
TORCH = 'torch==2.13.0'
EXTRA = ['torchvision==0.28.0', 'torchcodec==0.12.0']
REQS = ROOT / 'bench' / 'interop_check.txt'
FFMPEG_DEBS = ['libavcodec59', 'libavformat59', 'libavutil57', 'libswscale6',
               'libswresample4', 'libavdevice59', 'libavfilter8']
VIDEO_BOUND = 4.0          # mean abs error, grey levels, LeRobot's AV1 video
ROBOMIMIC_BOUND = 0.0      # robomimic stores the frames as they are


class CheckError(RuntimeError):
    """A step of the check could not run (not a mismatch)."""


def run(cmd, log, **kw) -> subprocess.CompletedProcess:
    """Run ``cmd``, echo it, keep its output in ``log``; raise CheckError when it fails."""
    shown = ' '.join(str(c) for c in cmd)
    print(f'$ {shown}', flush=True)
    t = time.monotonic()
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    log.append({'cmd': shown, 'rc': p.returncode, 'seconds': round(time.monotonic() - t, 1)})
    if p.returncode != 0:
        raise CheckError(f'{shown} failed (exit {p.returncode}):\n{p.stdout[-3000:]}'
                         f'\n{p.stderr[-3000:]}')
    return p


# ---------------------------------------------------------------------------- dataset

LABEL_PATTERN = 'ep 0 demo; ep 1 policy, pre_intervention 15-19, intervention 20-29, policy; ' \
                'ep 2 demo, last 3 hold'


def make_dataset(path: Path, episodes: int = 3, size=(48, 64)) -> Path:
    """Scripted lift episodes, two cameras, written as il-ros convert would.

    The labels follow LABEL_PATTERN (the expert makes no interventions; the pattern is there
    so that the check sees every code travel).
    """
    sys.path.insert(0, str(ROOT))
    from il_ros.data.store import DatasetWriter, encode_labels
    from il_ros.sim import make_env, make_expert
    env = make_env('lift', cameras=('front', 'wrist'), image_size=size)
    expert = make_expert('lift', seed=0)
    with DatasetWriter(path) as w:
        for k in range(episodes):
            obs = env.reset(seed=k)
            expert.reset(env)
            fr = {'image/front': [], 'image/wrist': [], 'joint_pos': [], 'joint_vel': [],
                  'action': []}
            done = False
            while not done:
                a = expert.act(env)
                for key in ('image/front', 'image/wrist'):
                    fr[key].append(obs[key])
                fr['joint_pos'].append(obs['joint_pos'].astype(np.float32))
                fr['joint_vel'].append(obs['joint_vel'].astype(np.float32))
                fr['action'].append(a.label.astype(np.float32))
                obs, _, done = env.step(a.executed)
            out = {key: np.stack(v) for key, v in fr.items()}
            n = len(out['action'])
            labels = ['demo'] * n
            if k % 3 == 1:
                labels = (['policy'] * 15 + ['pre_intervention'] * 5 + ['intervention'] * 10
                          + ['policy'] * (n - 30))[:n]
            elif k % 3 == 2:
                labels[-3:] = ['hold'] * 3
            out['label'] = encode_labels(labels)
            out['time'] = np.arange(n) * env.control_dt
            w.append_episode(out, {'task': 'lift', 'joint_names': list(env.joint_names),
                                   'action_names': list(env.action_names),
                                   'rate_hz': 1.0 / env.control_dt,
                                   'success': bool(env.success()),
                                   'robot': env.robot.to_dict()})
    env.close()
    return path


# ---------------------------------------------------------------------------- venv

STUB_NOTE = ('torchvision stub: satisfies `import torchvision`, `torchvision.transforms` '
             '(.v2, .functional, Compose, Lambda) and `torchvision.models`, which lerobot '
             "0.4.4's dataset modules and robomimic 0.3.0's model modules import; neither "
             'calls them for these datasets (no image transforms, no vision encoder); every '
             'name raises NotImplementedError if called')

STUB_MODULE = '''"""Stub made by il_ros bench/interop_check.py; see STUB_NOTE there."""


class _Unavailable:
    def __init__(self, name):
        self._name = name

    def __call__(self, *a, **k):
        raise NotImplementedError(f'{self._name}: torchvision is a stub in this check')

    def __getattr__(self, attr):
        return _Unavailable(f'{self._name}.{attr}')


def __getattr__(name):
    if name.startswith('__'):
        raise AttributeError(name)
    return _Unavailable(f'{__name__}.{name}')
'''


def write_stub(where: Path) -> Path:
    """The stub torchvision package under ``where`` (put ``where`` on PYTHONPATH)."""
    for rel in ('torchvision', 'torchvision/transforms', 'torchvision/transforms/v2',
                'torchvision/models', 'torchvision/io'):
        d = where / rel
        d.mkdir(parents=True, exist_ok=True)
        (d / '__init__.py').write_text(STUB_MODULE)
    for rel in ('torchvision/transforms/functional.py',
                'torchvision/transforms/v2/functional.py'):
        (where / rel).write_text(STUB_MODULE)
    (where / 'torchvision' / '__init__.py').write_text(
        STUB_MODULE + '\n__version__ = "0.0.stub"\n'
        'from . import io, models, transforms  # noqa: E402,F401\n')
    return where


def setup_venv(venv: Path, python: str, log: list) -> dict:
    """Create/reuse the scratch venv; return what was done (for the summary)."""
    plan = {'python': python, 'torch': TORCH, 'extra': EXTRA, 'no_deps': [LEROBOT, ROBOMIMIC],
            'requirements': REQS.read_text()}
    marker = venv / '.il_ros_interop_plan.json'
    py = venv / 'bin' / 'python'
    if marker.is_file() and json.loads(marker.read_text()) == plan and py.exists():
        print(f'# reusing {venv} (its install plan is unchanged)')
        return {'venv': str(venv), 'reused': True}
    nice = ['nice', '-n', '10']
    if not py.exists():
        run([python, '-m', 'venv', venv], log)
    cons = venv / 'il_ros_constraints.txt'
    cons.write_text(TORCH + '\n')
    pip = [*nice, py, '-m', 'pip', 'install', '-q']
    run([*pip, TORCH], log)                                # the local CPU wheel (find-links)
    run([*pip, '-c', cons, *EXTRA], log)
    run([*pip, '--no-deps', LEROBOT, ROBOMIMIC], log)
    run([*pip, '-c', cons, '-r', REQS], log)
    marker.write_text(json.dumps(plan))
    return {'venv': str(venv), 'reused': False}


def ensure_video_decoder(py: Path, install: bool, log: list) -> str:
    """Make sure torchcodec loads FFmpeg; install Debian's libraries when asked and needed."""
    probe = [py, '-c', 'from torchcodec.decoders import VideoDecoder']
    p = subprocess.run([str(c) for c in probe], capture_output=True, text=True)
    if p.returncode == 0:
        return 'torchcodec loads FFmpeg'
    if not install:
        raise CheckError('torchcodec cannot load FFmpeg\'s shared libraries (lerobot decodes '
                         'video with it); rerun with --install-ffmpeg (apt-get install '
                         + ' '.join(FFMPEG_DEBS) + ')\n' + p.stderr[-1500:])
    run(['apt-get', 'install', '-y', '-q', '--no-install-recommends', *FFMPEG_DEBS], log,
        env={**os.environ, 'DEBIAN_FRONTEND': 'noninteractive'})
    run(probe, log)
    return 'torchcodec loads FFmpeg (Debian libraries installed by this run)'


# ---------------------------------------------------------------------------- child

CHILD = r'''
"""Runs in the scratch venv: load both exports with the real loaders, save what they give."""
import json, sys
from importlib import metadata
import numpy as np

lerobot_dir, robomimic_file, out_npz, out_json = sys.argv[1:5]
res, arrays = {}, {}
res['versions'] = {}
for p in ('lerobot', 'robomimic', 'torch', 'torchvision', 'torchcodec', 'datasets',
          'huggingface-hub', 'av', 'h5py', 'numpy', 'pyarrow'):
    try:
        res['versions'][p] = metadata.version(p)
    except metadata.PackageNotFoundError:
        res['versions'][p] = None
import torchvision
res['torchvision_file'] = torchvision.__file__

# ---- LeRobot
from lerobot.datasets.lerobot_dataset import LeRobotDataset
ds = LeRobotDataset('local/il_ros_check', root=lerobot_dir)
eps = ds.meta.episodes
r = {'num_episodes': int(ds.num_episodes), 'num_frames': int(ds.num_frames),
     'len': len(ds), 'fps': int(ds.fps), 'video_backend': ds.video_backend,
     'camera_keys': list(ds.meta.camera_keys), 'video_keys': list(ds.meta.video_keys),
     'features': sorted(ds.features), 'episodes': []}
last = r['num_episodes'] - 1
for e in range(r['num_episodes']):
    a, b = int(eps[e]['dataset_from_index']), int(eps[e]['dataset_to_index'])
    r['episodes'].append({'episode': e, 'from': a, 'to': b, 'length': int(eps[e]['length'])})
    if e not in (0, last):
        continue
    for which, i in (('first', a), ('last', b - 1)):
        item = ds[i]
        tag = f'lerobot/{e}/{which}/'
        for k, v in item.items():
            if hasattr(v, 'numpy'):
                arrays[tag + k] = v.numpy()
            elif k == 'task':
                r.setdefault('tasks', {})[f'{e}/{which}'] = v
res['lerobot'] = r

# ---- robomimic
import robomimic.utils.obs_utils as ObsUtils
from robomimic.utils.dataset import SequenceDataset
import h5py
with h5py.File(robomimic_file, 'r') as f:
    obs_keys = sorted(f['data/demo_0/obs'])
    masks = {k: sorted(x.decode() for x in f['mask'][k][:]) for k in f['mask']}
rgb = [k for k in obs_keys if k.endswith('_image')]
low = [k for k in obs_keys if k not in rgb]
ObsUtils.initialize_obs_utils_with_obs_specs({'obs': {'low_dim': low, 'rgb': rgb}})
dkeys = ('actions', 'rewards', 'dones', 'il_ros_labels')
sd = SequenceDataset(hdf5_path=robomimic_file, obs_keys=obs_keys, dataset_keys=dkeys,
                     seq_length=1, frame_stack=1, hdf5_cache_mode=None, load_next_obs=True)
r = {'n_demos': int(sd.n_demos), 'len': len(sd),
     'total_num_sequences': int(sd.total_num_sequences), 'demos': list(sd.demos),
     'obs_keys': obs_keys, 'low_dim': low, 'rgb': rgb, 'masks': masks,
     'demo_lengths': {d: int(sd._demo_id_to_demo_length[d]) for d in sd.demos}}
for split in sorted(masks):
    r[f'n_demos_{split}'] = int(SequenceDataset(
        hdf5_path=robomimic_file, obs_keys=obs_keys, dataset_keys=dkeys,
        filter_by_attribute=split).n_demos)
for d in (sd.demos[0], sd.demos[-1]):
    start, n = int(sd._demo_id_to_start_indices[d]), int(sd._demo_id_to_demo_length[d])
    for which, i in (('first', start), ('last', start + n - 1)):
        item = sd[i]
        tag = f'robomimic/{d}/{which}/'
        obs = ObsUtils.process_obs_dict({k: np.asarray(v) for k, v in item['obs'].items()})
        for k, v in obs.items():
            arrays[tag + 'obs/' + k] = np.asarray(v)
        for k in dkeys:
            arrays[tag + k] = np.asarray(item[k])
res['robomimic'] = r
np.savez(out_npz, **arrays)
with open(out_json, 'w') as fh:
    json.dump(res, fh)
print('child: loaded both exports')
'''


# ---------------------------------------------------------------------------- compare

class Compare:
    """Collect checks: (what, ok, detail)."""

    def __init__(self):
        self.rows: list[dict] = []

    def eq(self, what: str, got, want) -> None:
        g, w = np.asarray(got), np.asarray(want)
        ok = g.shape == w.shape and bool(np.array_equal(g, w))
        if ok:
            detail = 'exact'
        elif g.shape != w.shape:
            detail = f'shape {g.shape} != {w.shape}'
        else:
            detail = f'max abs diff {float(np.max(np.abs(g.astype(float) - w))):.3g}'
        if g.size == 1 and w.size == 1:
            detail = f'{g.item()} vs {w.item()}' + ('' if ok else ' MISMATCH')
        self.rows.append({'check': what, 'ok': ok, 'detail': detail})

    def image(self, what: str, got_chw01, want_hwc_u8, bound: float) -> None:
        g = np.asarray(got_chw01, dtype=np.float64)
        w = np.asarray(want_hwc_u8).transpose(2, 0, 1).astype(np.float64)
        if g.shape != w.shape:
            self.rows.append({'check': what, 'ok': False,
                              'detail': f'shape {g.shape} != {w.shape} (CHW)'})
            return
        err = np.abs(g * 255.0 - w)
        mae, worst = float(err.mean()), float(err.max())
        # 0.01: what float32 x / 255 * 255 may miss by; a real difference is >= 1 level
        ok = bool(mae <= bound + 0.01 and 0.0 <= g.min() and g.max() <= 1.0)
        self.rows.append({'check': what, 'ok': ok, 'mae_grey': round(mae, 3),
                          'max_grey': round(worst, 3),
                          'detail': f'mean abs err {mae:.3f}, max {worst:.3f} grey levels '
                                    f'(bound {bound:g} mean), '
                                    f'float [{g.min():.3f}, {g.max():.3f}] CHW {g.shape}'})


def compare(dataset: Path, child: dict, arrays: dict) -> Compare:
    sys.path.insert(0, str(ROOT))
    from il_ros.data.store import Dataset
    c = Compare()
    ds = Dataset(dataset)
    n_eps, lengths = ds.num_episodes, [int(x) for x in ds.episode_lengths]
    cams = [k[len('image/'):] for k in ds.keys if k.startswith('image/')]
    last = n_eps - 1
    src = {e: ds.episode(e) for e in (0, last)}
    meta = {e: ds.meta(e) for e in (0, last)}

    lr = child['lerobot']
    c.eq('lerobot episodes', lr['num_episodes'], n_eps)
    c.eq('lerobot frames', lr['num_frames'], sum(lengths))
    c.eq('lerobot len(dataset)', lr['len'], sum(lengths))
    c.eq('lerobot episode lengths', [x['length'] for x in lr['episodes']], lengths)
    c.eq('lerobot episode row ranges', [[x['from'], x['to']] for x in lr['episodes']],
         [[int(s), int(s + n)] for s, n in zip(ds.episode_starts, lengths)])
    c.eq('lerobot fps', lr['fps'], round(float(meta[0]['rate_hz'])))
    for e in (0, last):
        for which, t in (('first', 0), ('last', lengths[e] - 1)):
            tag, name = f'lerobot/{e}/{which}/', f'lerobot ep {e} {which}'
            c.eq(f'{name} episode_index', arrays[tag + 'episode_index'], e)
            c.eq(f'{name} frame_index', arrays[tag + 'frame_index'], t)
            c.eq(f'{name} observation.state', arrays[tag + 'observation.state'],
                 src[e]['joint_pos'][t])
            c.eq(f'{name} observation.velocity', arrays[tag + 'observation.velocity'],
                 src[e]['joint_vel'][t])
            c.eq(f'{name} action', arrays[tag + 'action'], src[e]['action'][t])
            c.eq(f'{name} il_ros.label', arrays[tag + 'il_ros.label'], src[e]['label'][t])
            c.eq(f'{name} il_ros.success', arrays[tag + 'il_ros.success'],
                 int(meta[e]['success']))
            # the Parquet column is float64; LeRobotDataset's torch.tensor() makes it float32
            c.eq(f'{name} il_ros.time (float32)', arrays[tag + 'il_ros.time'],
                 np.float32(src[e]['time'][t]))
            for cam in cams:
                c.image(f'{name} observation.images.{cam}',
                        arrays[tag + f'observation.images.{cam}'], src[e][f'image/{cam}'][t],
                        VIDEO_BOUND)

    rm = child['robomimic']
    c.eq('robomimic demos', rm['n_demos'], n_eps)
    c.eq('robomimic frames (sequences)', rm['len'], sum(lengths))
    c.eq('robomimic demo lengths', [rm['demo_lengths'][d] for d in rm['demos']], lengths)
    if 'n_demos_train' in rm and 'n_demos_valid' in rm:
        c.eq('robomimic train + valid demos', rm['n_demos_train'] + rm['n_demos_valid'], n_eps)
    for e, d in ((0, rm['demos'][0]), (last, rm['demos'][-1])):
        for which, t in (('first', 0), ('last', lengths[e] - 1)):
            tag, name = f'robomimic/{d}/{which}/', f'robomimic {d} {which}'
            c.eq(f'{name} obs/joint_pos', arrays[tag + 'obs/joint_pos'][0],
                 src[e]['joint_pos'][t])
            c.eq(f'{name} obs/joint_vel', arrays[tag + 'obs/joint_vel'][0],
                 src[e]['joint_vel'][t])
            c.eq(f'{name} actions', arrays[tag + 'actions'][0], src[e]['action'][t])
            c.eq(f'{name} il_ros_labels', arrays[tag + 'il_ros_labels'][0], src[e]['label'][t])
            c.eq(f'{name} dones', arrays[tag + 'dones'][0], int(t == lengths[e] - 1))
            c.eq(f'{name} rewards', arrays[tag + 'rewards'][0],
                 float(t == lengths[e] - 1 and bool(meta[e]['success'])))
            for cam in cams:
                c.image(f'{name} obs/{cam}_image', arrays[tag + f'obs/{cam}_image'][0],
                        src[e][f'image/{cam}'][t], ROBOMIMIC_BOUND)
    ds.close()
    return c


# ---------------------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--dataset', type=Path, help='an il_ros dataset (default: make one)')
    ap.add_argument('--venv', type=Path, default=Path('/tmp/il_ros_interop_venv'))
    ap.add_argument('--python', default='python3.11', help='interpreter of the scratch venv')
    ap.add_argument('--install-ffmpeg', action='store_true',
                    help="apt-get install Debian's FFmpeg libraries if torchcodec needs them")
    ap.add_argument('--torchvision', choices=['auto', 'real', 'stub'], default='auto')
    ap.add_argument('--keep', type=Path, help='work folder to keep (default: a temp folder)')
    ap.add_argument('--json', type=Path, help='also write the JSON summary here')
    args = ap.parse_args(argv)

    work = args.keep or Path(tempfile.mkdtemp(prefix='il_ros_interop_'))
    work.mkdir(parents=True, exist_ok=True)
    log: list = []
    summary: dict = {'date': time.strftime('%Y-%m-%d'), 'work': str(work)}
    try:
        t0 = time.monotonic()
        if args.dataset:
            dataset = args.dataset
        else:
            dataset = work / 'dataset'
            if dataset.exists():
                shutil.rmtree(dataset)
            print(f'# making {dataset}: 3 scripted lift episodes, cameras front+wrist 48x64',
                  flush=True)
            make_dataset(dataset)
            summary['labels'] = LABEL_PATTERN
        summary['make_dataset_s'] = round(time.monotonic() - t0, 1)

        lerobot_dir, robomimic_file = work / 'lerobot', work / 'lift.hdf5'
        shutil.rmtree(lerobot_dir, ignore_errors=True)
        env = {**os.environ, 'PYTHONPATH': os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get('PYTHONPATH')])])}
        il_ros = [sys.executable, '-m', 'il_ros.cli', 'export', dataset]
        for cmd in ([*il_ros, '--format', 'lerobot', '--out', lerobot_dir],
                    [*il_ros, '--format', 'robomimic', '--out', robomimic_file]):
            p = run(cmd, log, env=env)
            print(p.stdout.strip().splitlines()[-1])

        summary['venv'] = setup_venv(args.venv, args.python, log)
        py = args.venv / 'bin' / 'python'
        summary['video_decoder'] = ensure_video_decoder(py, args.install_ffmpeg, log)

        child_env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'HF_DATASETS_OFFLINE': '1',
                     'HF_HOME': str(work / 'hf_home'), 'PYTHONPATH': ''}
        p = subprocess.run([str(py), '-c', 'import torchvision.transforms'],
                           capture_output=True, text=True)
        real_tv = p.returncode == 0
        if not real_tv:
            summary['torchvision_real_error'] = (p.stderr.strip().splitlines() or ['?'])[-1]
            print(f'# the real torchvision does not import: {summary["torchvision_real_error"]}')
        if args.torchvision == 'stub' or (args.torchvision == 'auto' and not real_tv):
            child_env['PYTHONPATH'] = str(write_stub(work / 'stub'))
            summary['torchvision'] = STUB_NOTE
        elif not real_tv:
            raise CheckError('the real torchvision does not import in the venv; use '
                             '--torchvision auto or stub')
        else:
            summary['torchvision'] = 'real'
        print(f'# torchvision: {summary["torchvision"]}')
        (work / 'child.py').write_text(textwrap.dedent(CHILD))
        out_npz, out_json = work / 'loaded.npz', work / 'loaded.json'
        p = run([py, work / 'child.py', lerobot_dir, robomimic_file, out_npz, out_json], log,
                env=child_env)
        child = json.loads(out_json.read_text())
        with np.load(out_npz) as z:
            arrays = {k: z[k] for k in z.files}
        summary['versions'] = child['versions']
        summary['torchvision_file'] = child['torchvision_file']
        summary['lerobot'] = {k: child['lerobot'][k] for k in
                              ('num_episodes', 'num_frames', 'fps', 'video_backend',
                               'video_keys', 'features')}
        summary['robomimic'] = {k: child['robomimic'][k] for k in
                                ('n_demos', 'len', 'demos', 'obs_keys', 'low_dim', 'rgb',
                                 'masks')}
        c = compare(dataset, child, arrays)
    except CheckError as e:
        summary['error'] = str(e)
        summary['commands'] = log
        print(json.dumps(summary, indent=1))
        print(f'interop_check: {e}', file=sys.stderr)
        return 2
    summary['commands'] = log
    summary['checks'] = c.rows
    bad = [r for r in c.rows if not r['ok']]
    summary['ok'] = not bad
    summary['mismatches'] = len(bad)
    width = max(len(r['check']) for r in c.rows)
    print()
    print(f'{"check":<{width}}  ok   detail')
    for r in c.rows:
        print(f'{r["check"]:<{width}}  {"yes" if r["ok"] else "NO ":<4} {r["detail"]}')
    print()
    text = json.dumps(summary, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + '\n')
    print(f'\n{len(c.rows) - len(bad)}/{len(c.rows)} checks passed'
          + (f'; {len(bad)} MISMATCHES' if bad else ''))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
