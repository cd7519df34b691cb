"""`il-ros inspect`: summary numbers match the dataset; the pictures are real PNGs."""
import json
import subprocess
import sys

import numpy as np

from il_ros.data.convert import convert
from il_ros.data.store import Dataset
from il_ros.data.synthetic_bag import SyntheticBagSpec, write_synthetic_bag


def test_inspect_summary_and_pictures(tmp_path):
    for k in range(3):
        write_synthetic_bag(tmp_path / 'bags' / f'ep{k}',
                            SyntheticBagSpec(duration=1.0 + k, seed=k))
    reports = convert([tmp_path / 'bags'], tmp_path / 'ds', progress=False)
    frames = [r.frames for r in reports]
    res = subprocess.run([sys.executable, '-m', 'il_ros.cli', 'inspect', str(tmp_path / 'ds'),
                          '--json', '--out', str(tmp_path / 'pics')],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    s = json.loads(res.stdout)
    assert s['episodes'] == 3 and s['frames'] == sum(frames)
    assert s['frames_per_episode']['min'] == min(frames)
    assert s['labels']['demo'] == sum(frames) and s['success_rate'] is None
    assert s['keys']['image/front']['shape'] == [84, 84, 3]
    ds = Dataset(tmp_path / 'ds')
    actions = np.concatenate([ds.episode(e)['action'] for e in range(3)])
    np.testing.assert_allclose(s['stats']['action']['max'], actions.max(0), atol=1e-4)
    np.testing.assert_allclose(s['stats']['action']['mean'], actions.mean(0), atol=1e-4)
    for name in ('contact_sheet.png', 'actions.png'):
        data = (tmp_path / 'pics' / name).read_bytes()
        assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 10_000


def test_inspect_names_a_missing_dataset(tmp_path):
    res = subprocess.run([sys.executable, '-m', 'il_ros.cli', 'inspect',
                          str(tmp_path / 'nope')], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and str(tmp_path / 'nope') in res.stderr
