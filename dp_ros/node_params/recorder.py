"""recorder_node's parameters (config/recorder.yaml, `dp-ros record` options)."""
from dp_ros.core.choices import StampSource, values
from dp_ros.node_params.declaration import NodeParameters, Param

HEADER = """\
Parameters of the recording node (recorder_node; also `dp-ros record --params-file`).
Every value below is the default (`dp-ros params recorder_node` prints this file). Topics,
joints, cameras and the dataset fps come from the robot interface YAML, not from here."""

RECORDER = NodeParameters("recorder_node", [
    Param("robot_config", "", "robot interface YAML; empty = dp_ros's config/robot.yaml", option=True),
    Param("dataset_root", "~/dp_ros_data/demonstrations",
          "LeRobot dataset folder (v3.0, videos); a dataset already there is continued (it must have been "
          "recorded with the same robot interface)", option="--root"),
    Param("repo_id", "local/demonstrations", "repo_id written into a new dataset (only a label for a local dataset)",
          option=True),
    Param("task", "demonstration", "task description stored with every frame of the episodes recorded", option=True),
    Param("action_source", "", "the demonstrated action: leader (a leader arm's JointState), command (the command "
          "topic, parsed as the robot interface's command.type) or next_state (the next observed joint "
          "positions); empty = the robot interface's action.source",
          choices=("", "leader", "command", "next_state"), option=True),
    Param("action_topic", "", "topic of the leader JointState or of the commands; empty = the robot interface's",
          option=True),
    Param("max_input_age", 0.2, "seconds: a frame whose newest joint state, camera frame or action is older is "
          "unusable: never written (counted in ~/status frames_dropped, warned about)", above=0.0, option=True),
    Param("on_stale", "split", "an unusable frame inside an episode: split = the frames so far are saved as an "
          "episode and the next usable frame starts the next one (a dataset's timestamps are always true time: "
          "a gap is never closed up); discard = the episode is discarded, to be recorded again",
          choices=("split", "discard"), option=True),
    Param("min_frames", 10, "an episode, or a part of a split one, with fewer frames is not saved", minimum=1,
          option=True),
    Param("max_episode_seconds", 0.0, "an episode stops and is saved after this many seconds; 0 = no limit",
          minimum=0.0, option=True),
    Param("time_source", StampSource.RECEIVE.value, "receive: this node's clock when a message arrives; header: the "
          "messages' header stamps (all publishers must share this node's clock)",
          choices=values(StampSource),
          option=True),
    Param("input_reliability", "best_effort", "QoS of the subscriptions: best_effort matches any publisher; "
          "reliable never drops, but does not receive from best-effort publishers",
          choices=("best_effort", "reliable")),
    Param("status_rate", 2.0, "RecorderStatus messages per second on ~/status (plus one after each service call)",
          above=0.0),
])
