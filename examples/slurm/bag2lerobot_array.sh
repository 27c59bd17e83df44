#!/usr/bin/env bash
# Convert thousands of rosbag2 bags into one LeRobot dataset on a SLURM cluster:
# one array task converts one shard (a contiguous run of the bag list), then one
# dependent job merges the shards in order with LeRobot's dataset aggregation.
# The merged dataset equals one conversion of the whole list (tested with two shards).
#
#   ls -d /data/bags/*.mcap > bags.txt                    # the order of the episodes
#   conv=$(sbatch --parsable --array=0-99 examples/slurm/bag2lerobot_array.sh convert bags.txt shards)
#   sbatch --dependency=afterok:$conv examples/slurm/bag2lerobot_array.sh merge bags.txt shards data/fleet
#
# Options after the arguments go to `dp-ros bag2lerobot` (e.g. --robot-config my_robot.yaml --task "pick");
# give every task the same ones. A task whose shard holds no bags writes nothing.
# DP_ROS: the dp-ros command (default: dp-ros on PATH, e.g. from the environment of `make setup`).
#SBATCH --job-name=bag2lerobot
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH --time=04:00:00
#SBATCH --output=bag2lerobot-%A_%a.log
set -euo pipefail

step=${1:?usage: bag2lerobot_array.sh convert|merge BAG_LIST SHARD_DIR [OUTPUT] [bag2lerobot options]}
bag_list=${2:?the file listing the bags, one a line}
shard_dir=${3:?the folder of the shard datasets}
dp_ros=${DP_ROS:-dp-ros}

if [[ $step == convert ]]; then
    shift 3
    task=${SLURM_ARRAY_TASK_ID:?run as an array job (sbatch --array=0-N), or set SLURM_ARRAY_TASK_ID}
    count=${SLURM_ARRAY_TASK_COUNT:?run as an array job, or set SLURM_ARRAY_TASK_COUNT}
    mapfile -t bags < <(grep -v '^[[:space:]]*$' "$bag_list")
    mkdir -p "$shard_dir"
    # --jobs: the cores SLURM gave this task (one bag: its images are decoded in that many processes)
    exec $dp_ros bag2lerobot "${bags[@]}" --shard "$task/$count" --jobs "${SLURM_CPUS_PER_TASK:-1}" \
        -o "$shard_dir/$(printf 'shard-%05d' "$task")" --overwrite --no-progress "$@"
elif [[ $step == merge ]]; then
    output=${4:?the folder of the merged dataset}
    mapfile -t shards < <(find "$shard_dir" -maxdepth 1 -name 'shard-*' -type d | sort)
    exec $dp_ros merge-datasets "${shards[@]}" -o "$output"
else
    echo "bag2lerobot_array.sh: unknown step '$step' (convert or merge)" >&2
    exit 2
fi
