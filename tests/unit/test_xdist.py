"""Parallel points with pytest-xdist: one server per worker, disjoint GPUs, distinct ports, one summary."""
from __future__ import annotations


from pytest_inferencemax.plan.devices import device_slice, worker_index


def test_device_slices_are_disjoint():
    slices = [device_slice(w, 4, None, ("HIP_VISIBLE_DEVICES",)) for w in range(2)]
    assert [s.devices for s in slices] == [("0", "1", "2", "3"), ("4", "5", "6", "7")]
    assert slices[1].env() == {"HIP_VISIBLE_DEVICES": "4,5,6,7"}
    listed = device_slice(1, 2, ("3", "5", "6", "7"), ("CUDA_VISIBLE_DEVICES",))
    assert listed.devices == ("6", "7")
    assert worker_index("gw3") == 3 and worker_index(None) == 0


