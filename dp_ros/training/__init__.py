"""Training and fine-tuning with LeRobot, offline evaluation and plots (ROS-free).

- ``configuration_training``: the training options (LeRobot's names and defaults) and their LeRobot argument list
- ``config_loading``: reading the training YAML and overrides, checking every value's type
- ``preflight``: checks done before a trainer starts (dataset, checkpoint, output folder, GPUs)
- ``accelerate_launch``: the trainer's command line, alone or one process per rank under ``accelerate launch``
- ``launcher``: LeRobot's ``lerobot-train`` as managed child processes (``run_training``)
- ``lerobot_entry``: the trainer's entry point (LeRobot's own main, reporting events, with a checkpoint-safe
  stop); the only place that touches LeRobot's internals
- ``progress``: reading the trainer's events into progress snapshots
- ``evaluation``: action errors and diversity on held-out episodes
- ``visualization``: denoising traces and episode roll-outs for the plots
- ``plots``: denoising and predicted-versus-demonstrated PNGs

Modules are imported on use; importing this package loads nothing heavy.
"""
