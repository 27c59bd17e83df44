"""The one throttle for repeated warnings, on an injected clock."""
from dp_ros.core.log_throttle import LogThrottle


def test_one_message_per_key_per_period():
    now = [0.0]
    throttle = LogThrottle(5.0, clock=lambda: now[0])
    assert throttle.ready("camera") and throttle.ready("joints")
    now[0] = 4.9
    assert not throttle.ready("camera") and not throttle.ready("joints")
    now[0] = 5.0
    assert throttle.ready("camera") and not throttle.ready("camera")
    assert throttle.ready("joints")
