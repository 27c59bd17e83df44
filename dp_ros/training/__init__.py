"""Training and fine-tuning with LeRobot, offline evaluation and plots (ROS-free).

- ``configuration_training``: the training YAML and its LeRobot argument list
- ``preflight``: checks done before a trainer starts (dataset, checkpoint, output folder)
- ``launcher``: LeRobot's ``lerobot-train`` as a managed child process (``run_training``)
- ``lerobot_entry``: the child's entry point (LeRobot's own main, with a checkpoint-safe stop)
- ``progress``: reading the trainer's log lines
- ``evaluation``: action errors and diversity on held-out episodes
- ``visualization``: denoising traces and episode roll-outs for the plots
- ``plots``: denoising and predicted-versus-demonstrated PNGs

Modules are imported on use; importing this package loads nothing heavy.
"""
