"""dp_ros_msgs messages cross a process boundary over real DDS."""
import pytest
import textwrap

from ros_testing import python_process, ros_node, spin_until, stop_process

pytestmark = pytest.mark.dds

PUBLISHER = textwrap.dedent("""
    import time, rclpy
    from dp_ros_msgs.msg import PolicyStatus
    rclpy.init()
    node = rclpy.create_node('status_publisher')
    pub = node.create_publisher(PolicyStatus, '/test_policy_status', 10)
    i = 0
    try:
        while rclpy.ok():
            msg = PolicyStatus(state=PolicyStatus.STATE_RUNNING, state_name='running',
                               reason='from another process', queue_depth=7, chunks_produced=i,
                               last_inference_time=0.125)
            msg.header.stamp = node.get_clock().now().to_msg()
            pub.publish(msg)
            i += 1
            time.sleep(0.05)
    except KeyboardInterrupt:
        pass
""")


def test_policy_status_between_processes():
    from dp_ros_msgs.msg import PolicyStatus

    proc = python_process(PUBLISHER)
    received = []
    try:
        with ros_node("status_listener") as node:
            node.create_subscription(PolicyStatus, "/test_policy_status", received.append, 10)
            assert spin_until(node, lambda: len(received) >= 3, timeout=30), stop_process(proc)
    finally:
        output = stop_process(proc)
    msg = received[-1]
    assert msg.state == PolicyStatus.STATE_RUNNING
    assert msg.reason == "from another process"
    assert msg.queue_depth == 7
    assert msg.last_inference_time == 0.125
    assert received[-1].chunks_produced > received[0].chunks_produced, output


def test_all_messages_have_their_fields():
    from dp_ros_msgs.msg import PolicyStatus, RecorderStatus, TaskStatus, TrainingStatus

    status = TrainingStatus(step=3, total_steps=10, loss=0.5, learning_rate=1e-4, grad_norm=2.0,
                            samples_per_second=12.5, eta_seconds=30.0, checkpoint_path="/tmp/c")
    assert status.step == 3 and status.checkpoint_path == "/tmp/c"
    assert TrainingStatus.STATE_FAILED != TrainingStatus.STATE_FINISHED
    for field in ("newest_observation_age", "actions_dropped_late", "mean_inference_time", "watchdog_trips"):
        assert hasattr(PolicyStatus(), field)
    assert hasattr(RecorderStatus(), "frames_dropped")
    assert hasattr(TaskStatus(), "success")
