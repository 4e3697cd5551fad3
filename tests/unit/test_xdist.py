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




class _Config:
    def __init__(self, dist: str) -> None:
        self.dist = dist

    def getoption(self, name: str, default=None):
        return self.dist if name == "dist" else default


def test_groups_ignored_is_said_only_where_pytest_has_no_nodeid_for_xdist(monkeypatch):
    from pytest_inferencemax.plugin import xdist_groups

    assert xdist_groups.groups_ignored(_Config("loadgroup")) is None  # the pinned pytest (<9.2) honours them

    class IdNode:  # pytest 9.2's nodes: the id in NodeId (_id), no _nodeid for xdist 3.8 to append the group to
        __slots__ = ("_id", "name")

    monkeypatch.setattr(xdist_groups, "Node", IdNode)
    said = xdist_groups.groups_ignored(_Config("loadgroup"))
    assert said and "ignores pytest-xdist's groups" in said and "pip install 'pytest<9.2'" in said
    assert xdist_groups.groups_ignored(_Config("load")) is None  # no groups asked for: nothing to say
