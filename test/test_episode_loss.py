"""Loss made visible: expected vs measured rate, gaps and lost messages per topic.

An episode whose topic lost more than ``max_loss_fraction`` is ``complete_with_loss``, says
which topic lost how much, and ``il-ros convert`` converts it with a warning. Streams are
written through EpisodeWriter with known holes; the loss figures must match the holes.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from il_ros.data.bag_info import format_summary, summarize, topic_stats, typical_period_ns
from il_ros.data.episodes import count_complete, lossy_topics
from test_episode_writer import FLOATS, floats, record, S, SlowBag

MS = 1_000_000


def test_lost_messages_follow_the_holes_and_the_expected_rate(tmp_path):
    holes = set(range(40, 50)) | {60, 62, 64}
    meta = record(tmp_path, skip=holes, expected_rates={'/js': 50.0, '/cmd': 50.0})
    js, cmd = meta['topics']['/js'], meta['topics']['/cmd']
    assert meta['status'] == 'complete_with_loss' and meta['success'] is True
    assert (js['expected_rate_hz'], js['expected_rate_source']) == (50.0, 'parameter')
    assert js['lost'] == 13 and js['count'] == 87
    assert js['loss_fraction'] == pytest.approx(13 / 100)
    assert js['rate_hz'] == pytest.approx(86 / 1.98)     # measured: first to last stamp
    assert js['gap_count'] == 1                          # 40..49; single holes are not gaps
    # /cmd (every second i, receive time 10 ms apart) missed i = 40..48, 60, 62, 64.
    assert cmd['time_source'] == 'receive' and cmd['lost'] == 8
    assert any(w.startswith('/js lost ~13 of 100 messages (13.0%') and '50.0 Hz expected'
               in w for w in meta['warnings']), meta['warnings']
    assert lossy_topics(meta) == ['/cmd: lost ~8 of 50 (16.0%)',
                                  '/js: lost ~13 of 100 (13.0%)']
    assert meta['expected_rates'] == {'/cmd': 50.0, '/js': 50.0}


def test_loss_is_estimated_from_header_stamps_without_a_rate(tmp_path):
    """57% of the frames lost at random: the estimate needs no configured rate."""
    rng = np.random.default_rng(0)
    holes = {i for i in range(1, 399) if rng.random() < 0.57}
    meta = record(tmp_path, n=400, skip=holes)
    js = meta['topics']['/js']
    assert js['expected_rate_source'] == 'estimated'
    assert js['expected_rate_hz'] == pytest.approx(50.0)
    assert js['lost'] == len(holes) and js['count'] == 400 - len(holes)
    assert meta['status'] == 'complete_with_loss'
    # A receive-time topic without a configured rate has no estimate.
    assert meta['topics']['/cmd']['lost'] is None


def test_no_loss_is_complete_and_the_threshold_is_a_parameter(tmp_path):
    meta = record(tmp_path / 'a', expected_rates={'/js': 50.0})
    assert meta['status'] == 'complete' and meta['topics']['/js']['lost'] == 0
    meta = record(tmp_path / 'b', skip={50}, expected_rates={'/js': 50.0},
                  max_loss_fraction=0.05)                 # 1 of 100 lost; /cmd 1 of 50
    assert meta['status'] == 'complete' and meta['topics']['/js']['lost'] == 1
    assert count_complete(tmp_path / 'b') == 1
    with pytest.raises(ValueError, match='max_loss_fraction'):
        record(tmp_path / 'c', max_loss_fraction=1.5)


def test_queue_drops_count_as_lost_without_a_rate(tmp_path):
    from il_ros.data.episode_writer import EpisodeWriter
    ep = EpisodeWriter.open(tmp_path, start_time_ns=S, queue_size=4,
                            bag_factory=lambda p, s: SlowBag(p, s, delay=0.02))
    ep.add_topic('/cmd', FLOATS)
    accepted = [ep.write('/cmd', floats(i), S + i * 10 * MS) for i in range(60)]
    meta = ep.finish(True, 2 * S)
    cmd = meta['topics']['/cmd']
    assert cmd['lost'] == cmd['drops'] == accepted.count(False) > 0
    assert meta['status'] == 'complete_with_loss'


def test_topic_stats_and_the_typical_period():
    t = np.arange(0, 100) * 20 * MS
    assert typical_period_ns(np.diff(t)) == 20 * MS
    kept = np.delete(t, [10, 11, 30])
    st = topic_stats(kept, expected_hz=50.0)
    assert (st['lost'], st['gap_count'], st['count']) == (3, 1, 97)
    est = topic_stats(kept, estimate=True)
    assert est['expected_rate_hz'] == pytest.approx(50.0) and est['lost'] == 3
    assert topic_stats(kept)['lost'] is None and topic_stats([])['lost'] is None
    assert topic_stats([], expected_hz=10.0)['lost'] == 0


def test_bag_info_shows_expected_rate_and_loss(tmp_path):
    record(tmp_path, skip=set(range(40, 50)), expected_rates={'/js': 50.0})
    bag = summarize(tmp_path)['bags'][0]
    assert bag['status'] == 'complete_with_loss'
    assert bag['topics']['/js']['lost'] == 10
    assert bag['topics']['/js']['expected_rate_source'] == 'parameter'
    text = format_summary(summarize(tmp_path))
    assert 'status: complete_with_loss' in text and 'exp Hz' in text and '/js lost ~10' in text


def test_convert_keeps_a_lossy_episode_with_a_warning(tmp_path):
    """complete_with_loss converts (not rejected), and the report says what was lost."""
    from il_ros.data.convert import convert
    from il_ros.data.synthetic_bag import SyntheticBagSpec, write_synthetic_bag
    bag = write_synthetic_bag(tmp_path / 'bags' / 'episode_0000', SyntheticBagSpec(seed=1))
    meta = {'status': 'complete_with_loss', 'success': True, 'warnings': ['w'],
            'topics': {'/camera/front/image_raw': {'count': 40, 'lost': 20,
                                                   'loss_fraction': 1 / 3}}}
    bag.with_suffix('.json').write_text(json.dumps(meta))
    (report,) = convert([tmp_path / 'bags'], tmp_path / 'ds', progress=False)
    assert report.status == 'converted' and report.episode_status == 'complete_with_loss'
    assert any('complete_with_loss' in w and '/camera/front/image_raw: lost ~20 of 60' in w
               for w in report.warnings), report.warnings



def test_a_stall_and_catch_up_burst_is_a_gap_but_no_loss():
    """A publisher that stalls and then sends what it owes loses nothing: gaps, not loss."""
    period = 2 * MS                                   # 500 Hz
    t = list(range(0, 200 * period, period))
    # messages 100-109 held back, then sent in a burst just before 110's time; 110 on time
    stalled = t[:100] + [t[109] + k * (period // 20) for k in range(10)] + t[110:]
    stats = topic_stats(stalled, expected_hz=500.0)
    assert stats['gap_count'] >= 1
    assert stats['lost'] == 0 and stats['loss_fraction'] == 0.0
    holes = [x for i, x in enumerate(t) if i % 10]    # every 10th message missing
    assert topic_stats(holes, expected_hz=500.0)['lost'] == 19   # the span holds 199
