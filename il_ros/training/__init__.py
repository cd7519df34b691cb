"""il_ros.training (ROS-free): the training loop, its config, checkpoints and sim evaluation.

- ``config``: TrainConfig (validated) and YAML load/save with ``key=value`` overrides;
- ``trainer``: the loop (``train(cfg, out_dir)``), resumable, with periodic rollouts;
- ``schedule``: batch order and learning rate as pure functions of the step;
- ``state``: EMA, RNG and optimizer state in safetensors + JSON (never pickle);
- ``logbook``: log.csv and curves.png;
- ``evaluate``: rollouts of a policy or a checkpoint in the MuJoCo sim;
- ``spec``: the RobotSpec of a dataset or of the sim robot;
- ``worker``: a training run in its own process (what the ``trainer`` node starts);
- ``cli``: ``il-ros train`` / ``il-ros eval``.

See docs/training.md.
"""
