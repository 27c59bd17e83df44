"""train_node's parameters (the training itself is configured by the training YAML, config/train.yaml)."""
from dp_ros.node_params.declaration import NodeParameters, Param

TRAIN = NodeParameters("train_node", [
    Param("config", "", "training YAML (the train: section of config/train.yaml); empty = built-in defaults"),
    Param("overrides", ("",), "training options as name=value, e.g. ['steps=5000', 'policy.horizon=32']"),
    Param("dataset_root", "", "dataset folder (meta/, data/, videos/); overrides dataset.root"),
    Param("output_dir", "", "run folder; overrides output_dir"),
    Param("pretrained_path", "", "fine-tune from this checkpoint; overrides policy.pretrained_path"),
    Param("teacher", "", "distil this trained checkpoint into a consistency student (1-4 network calls per chunk); "
          "overrides distillation.teacher (see dp-ros distill --help)"),
    Param("steps", 0, "optimisation steps in total; 0 = as the YAML says", minimum=0),
    Param("device", "", "auto, cpu, cuda, cuda:N or mps; overrides policy.device"),
    Param("resume", False, "continue the run in output_dir from its last checkpoint"),
    Param("num_processes", 0, "training processes (one per GPU) through accelerate launch; 0 = as the YAML says",
          minimum=0),
    Param("accelerate_config", "", "accelerate config file (e.g. for several machines); overrides "
          "accelerate.config_file"),
    Param("status_rate", 2.0, "TrainingStatus messages per second on ~/status (and one at every state change)",
          above=0.0),
    Param("stop_timeout", 120.0, "seconds a stop may take (finishing a checkpoint) before the trainer is killed",
          above=0.0),
    Param("shutdown_when_done", False, "shut the node down once training has finished, stopped or failed"),
])
