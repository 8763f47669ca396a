#!/usr/bin/python3
"""conformance.py SOCKET WORKDIR GROUP... - dm's CSI conformance suite.

Drives dmd's CSI socket with a real gRPC client (grpcio, stubs compiled
from the tree's csi.proto at run time, csiclient.py) through the cases of
kubernetes-csi's csi-sanity that apply to dm, written anew: identity;
create and delete, idempotent and conflicting; missing arguments; name
lengths; capacity; volumes from a snapshot, from a volume and from a
missing source; list pagination; snapshots; node publish and unpublish
(idempotent, read-only), stats; errors by their gRPC codes.

GROUP is identity, controller, snapshot, node or errors. Prints one line
per case ("ok - NAME" or "FAIL - NAME: why") and exits 1 when a case
failed. Node cases bind-mount, so they need root; WORKDIR holds the stubs
and the target paths.
"""

import concurrent.futures
import errno
import os
import re
import sys
import time
import traceback
import uuid

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import csiclient  # noqa: E402

SC = grpc.StatusCode
CASES = {}


def case(group):
    def register(fn):
        CASES.setdefault(group, []).append(fn)
        return fn
    return register


class Failed(Exception):
    pass


def check(cond, why):
    if not cond:
        raise Failed(why)


def expect_code(want, call, *args, **kwargs):
    got = csiclient.code_of(call, *args, **kwargs)
    check(got == want, "expected %s, got %s" % (want.name, got.name))


def uniq(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


# ---- identity ----

@case("identity")
def plugin_info(c):
    r = c.identity.GetPluginInfo(c.pb.GetPluginInfoRequest())
    check(re.fullmatch(r"[a-zA-Z0-9]([a-zA-Z0-9.-]{0,61}[a-zA-Z0-9])?", r.name),
          "name %r is not a domain-style name of at most 63 characters" % r.name)
    check(r.vendor_version, "no vendor_version")


@case("identity")
def plugin_capabilities(c):
    r = c.identity.GetPluginCapabilities(c.pb.GetPluginCapabilitiesRequest())
    types = [cap.service.type for cap in r.capabilities if cap.HasField("service")]
    check(c.pb.PluginCapability.Service.CONTROLLER_SERVICE in types,
          "no CONTROLLER_SERVICE in %s" % types)


@case("identity")
def probe_ready(c):
    r = c.identity.Probe(c.pb.ProbeRequest())
    check(not r.HasField("ready") or r.ready.value, "Probe says not ready")


# ---- controller ----

@case("controller")
def controller_capabilities(c):
    r = c.controller.ControllerGetCapabilities(c.pb.ControllerGetCapabilitiesRequest())
    T = c.pb.ControllerServiceCapability.RPC
    have = {cap.rpc.type for cap in r.capabilities}
    for t in (T.CREATE_DELETE_VOLUME, T.LIST_VOLUMES, T.GET_CAPACITY, T.CREATE_DELETE_SNAPSHOT,
              T.LIST_SNAPSHOTS, T.CLONE_VOLUME):
        check(t in have, "capability %s missing" % T.Type.Name(t))


@case("controller")
def get_capacity(c):
    r = c.controller.GetCapacity(c.pb.GetCapacityRequest())
    check(r.available_capacity > 0, "no capacity available: %d" % r.available_capacity)


@case("controller")
def create_without_name(c):
    expect_code(SC.INVALID_ARGUMENT, c.create, "")


@case("controller")
def create_without_capabilities(c):
    req = c.pb.CreateVolumeRequest(name=uniq("nocaps"))
    expect_code(SC.INVALID_ARGUMENT, c.controller.CreateVolume, req)


@case("controller")
def create_block_or_multi_node_refused(c):
    expect_code(SC.INVALID_ARGUMENT, c.create, uniq("block"), caps=[c.cap(block=True)])
    expect_code(SC.INVALID_ARGUMENT, c.create, uniq("multi"),
                caps=[c.cap(mode=c.pb.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER)])


@case("controller")
def create_unknown_parameter_refused(c):
    expect_code(SC.INVALID_ARGUMENT, c.create, uniq("param"), params={"color": "blue"})
    # Kubernetes' own parameters pass
    v = c.create(uniq("k8sparam"), params={"csi.storage.k8s.io/pvc/name": "data"})
    c.delete(v.volume_id)


@case("controller")
def create_with_capacity(c):
    v = c.create(uniq("cap"), size=1 << 30)
    check(v.capacity_bytes >= 1 << 30, "capacity %d < 1 GiB asked" % v.capacity_bytes)
    check(v.volume_id, "no volume id")
    c.delete(v.volume_id)


@case("controller")
def create_idempotent(c):
    name = uniq("same")
    a = c.create(name, size=1 << 20)
    b = c.create(name, size=1 << 20)
    check(a.volume_id == b.volume_id, "two ids for one name: %s, %s" % (a.volume_id, b.volume_id))
    check(a.capacity_bytes == b.capacity_bytes, "two capacities")
    c.delete(a.volume_id)


@case("controller")
def create_conflict(c):
    name = uniq("conflict")
    a = c.create(name, size=1 << 20)
    expect_code(SC.ALREADY_EXISTS, c.create, name, size=2 << 20)
    c.delete(a.volume_id)


@case("controller")
def create_name_lengths(c):
    longest = ("maxlen-" + uuid.uuid4().hex + "x" * 128)[:128]
    v = c.create(longest)
    again = c.create(longest)
    check(v.volume_id == again.volume_id, "a 128-byte name is not idempotent")
    c.delete(v.volume_id)
    expect_code(SC.INVALID_ARGUMENT, c.create, longest + "y")
    odd = "pvc/odd name é " + uuid.uuid4().hex[:6]
    w = c.create(odd)
    check(c.create(odd).volume_id == w.volume_id, "an odd name is not idempotent")
    c.delete(w.volume_id)


@case("controller")
def create_from_snapshot(c):
    v = c.create(uniq("src"))
    s = c.snapshot(uniq("snap"), v.volume_id)
    w = c.create(uniq("fromsnap"), snapshot=s.snapshot_id)
    check(w.content_source.snapshot.snapshot_id == s.snapshot_id,
          "content source %s" % w.content_source)
    check(w.volume_id != v.volume_id, "the same volume")
    c.delete(w.volume_id)
    c.delete_snapshot(s.snapshot_id)
    c.delete(v.volume_id)


@case("controller")
def create_from_missing_snapshot(c):
    expect_code(SC.NOT_FOUND, c.create, uniq("nosnap"), snapshot="no-such-dot:no-such-commit")


@case("controller")
def create_from_volume(c):
    v = c.create(uniq("clonesrc"))
    w = c.create(uniq("clone"), volume=v.volume_id)
    check(w.content_source.volume.volume_id == v.volume_id, "content source %s" % w.content_source)
    check(w.volume_id != v.volume_id, "the same volume")
    c.delete(w.volume_id)
    c.delete(v.volume_id)


@case("controller")
def create_from_missing_volume(c):
    expect_code(SC.NOT_FOUND, c.create, uniq("novol"), volume="no-such-dot:master")


@case("controller")
def delete_arguments_and_idempotency(c):
    expect_code(SC.INVALID_ARGUMENT, c.delete, "")
    c.delete("no-such-dot:master")  # a volume that is not there: success
    v = c.create(uniq("deltwice"))
    c.delete(v.volume_id)
    c.delete(v.volume_id)


@case("controller")
def validate_capabilities(c):
    ctl, pb = c.controller, c.pb
    expect_code(SC.INVALID_ARGUMENT, ctl.ValidateVolumeCapabilities,
                pb.ValidateVolumeCapabilitiesRequest(volume_capabilities=[c.cap()]))
    v = c.create(uniq("validate"))
    expect_code(SC.INVALID_ARGUMENT, ctl.ValidateVolumeCapabilities,
                pb.ValidateVolumeCapabilitiesRequest(volume_id=v.volume_id))
    expect_code(SC.NOT_FOUND, ctl.ValidateVolumeCapabilities,
                pb.ValidateVolumeCapabilitiesRequest(volume_id="no-such-dot:master",
                                                     volume_capabilities=[c.cap()]))
    r = ctl.ValidateVolumeCapabilities(pb.ValidateVolumeCapabilitiesRequest(
        volume_id=v.volume_id, volume_capabilities=[c.cap()]))
    check(r.HasField("confirmed"), "a mount, single-node writer volume is not confirmed")
    r = ctl.ValidateVolumeCapabilities(pb.ValidateVolumeCapabilitiesRequest(
        volume_id=v.volume_id, volume_capabilities=[c.cap(block=True)]))
    check(not r.HasField("confirmed") and r.message, "a block capability is confirmed")
    c.delete(v.volume_id)


def list_all_volumes(c, page):
    ids, token, pages = [], "", 0
    while True:
        r = c.controller.ListVolumes(c.pb.ListVolumesRequest(max_entries=page, starting_token=token))
        check(len(r.entries) <= page, "a page of %d entries for max_entries %d" % (len(r.entries), page))
        ids += [e.volume.volume_id for e in r.entries]
        pages += 1
        token = r.next_token
        if not token:
            return ids, pages
        check(pages < 1000, "pagination does not end")


@case("controller")
def list_volumes_pagination(c):
    made = [c.create(uniq("list")).volume_id for _ in range(5)]
    ids, pages = list_all_volumes(c, 2)
    for v in made:
        check(ids.count(v) == 1, "volume %s listed %d times" % (v, ids.count(v)))
    check(len(ids) == len(set(ids)), "a volume listed twice")
    check(pages >= 3, "5 volumes in %d pages of 2" % pages)
    # a deleted volume is not listed; one made since is
    c.delete(made[0])
    newer = c.create(uniq("list")).volume_id
    ids, _ = list_all_volumes(c, 3)
    check(made[0] not in ids, "a deleted volume is listed")
    check(newer in ids, "a new volume is not listed")
    everything = c.controller.ListVolumes(c.pb.ListVolumesRequest())
    check(not everything.next_token, "max_entries 0 answered a next token")
    for v in made[1:] + [newer]:
        c.delete(v)


@case("controller")
def list_volumes_invalid_token(c):
    expect_code(SC.ABORTED, c.controller.ListVolumes,
                c.pb.ListVolumesRequest(starting_token="invalid-token"))


# ---- snapshots ----

@case("snapshot")
def snapshot_arguments(c):
    v = c.create(uniq("snapargs"))
    expect_code(SC.INVALID_ARGUMENT, c.snapshot, "", v.volume_id)
    expect_code(SC.INVALID_ARGUMENT, c.snapshot, uniq("s"), "")
    expect_code(SC.NOT_FOUND, c.snapshot, uniq("s"), "no-such-dot:master")
    expect_code(SC.INVALID_ARGUMENT, c.delete_snapshot, "")
    c.delete(v.volume_id)


@case("snapshot")
def snapshot_idempotent_and_conflict(c):
    v = c.create(uniq("snapsrc"))
    w = c.create(uniq("snapsrc2"))
    name = uniq("snap")
    a = c.snapshot(name, v.volume_id)
    b = c.snapshot(name, v.volume_id)
    check(a.snapshot_id == b.snapshot_id, "two ids for one snapshot name")
    check(a.source_volume_id == v.volume_id, "source %s" % a.source_volume_id)
    check(a.creation_time.seconds > 0, "no creation time")
    expect_code(SC.ALREADY_EXISTS, c.snapshot, name, w.volume_id)
    longest = ("maxsnap-" + uuid.uuid4().hex + "s" * 128)[:128]
    m = c.snapshot(longest, v.volume_id)
    expect_code(SC.INVALID_ARGUMENT, c.snapshot, longest + "z", v.volume_id)
    for s in (a, m):
        c.delete_snapshot(s.snapshot_id)
        c.delete_snapshot(s.snapshot_id)  # twice: success
    c.delete_snapshot("no-such-dot:no-such-commit")
    c.delete(v.volume_id)
    c.delete(w.volume_id)


@case("snapshot")
def snapshot_ready(c):
    v = c.create(uniq("ready"))
    s = c.snapshot(uniq("snap"), v.volume_id)
    deadline = time.time() + 30
    while not s.ready_to_use and time.time() < deadline:
        time.sleep(0.2)
        r = c.controller.ListSnapshots(c.pb.ListSnapshotsRequest(snapshot_id=s.snapshot_id))
        s = r.entries[0].snapshot
    check(s.ready_to_use, "the snapshot is not ready after 30 s")
    c.delete_snapshot(s.snapshot_id)
    c.delete(v.volume_id)


@case("snapshot")
def list_snapshots(c):
    pb, ctl = c.pb, c.controller
    v = c.create(uniq("lsa"))
    w = c.create(uniq("lsb"))
    sv = [c.snapshot(uniq("s"), v.volume_id) for _ in range(3)]
    sw = c.snapshot(uniq("s"), w.volume_id)
    r = ctl.ListSnapshots(pb.ListSnapshotsRequest(snapshot_id=sv[1].snapshot_id))
    check([e.snapshot.snapshot_id for e in r.entries] == [sv[1].snapshot_id],
          "by id: %s" % [e.snapshot.snapshot_id for e in r.entries])
    r = ctl.ListSnapshots(pb.ListSnapshotsRequest(snapshot_id="no-such-dot:no-such-commit"))
    check(len(r.entries) == 0, "an unknown id lists %d" % len(r.entries))
    r = ctl.ListSnapshots(pb.ListSnapshotsRequest(source_volume_id=v.volume_id))
    check(sorted(e.snapshot.snapshot_id for e in r.entries) ==
          sorted(s.snapshot_id for s in sv), "by source volume")
    r = ctl.ListSnapshots(pb.ListSnapshotsRequest(source_volume_id="no-such-dot:master"))
    check(len(r.entries) == 0, "an unknown source lists %d" % len(r.entries))
    seen, token, pages = [], "", 0
    while True:
        r = ctl.ListSnapshots(pb.ListSnapshotsRequest(max_entries=2, starting_token=token))
        check(len(r.entries) <= 2, "a page of %d" % len(r.entries))
        seen += [e.snapshot.snapshot_id for e in r.entries]
        pages += 1
        token = r.next_token
        if not token:
            break
    for s in sv + [sw]:
        check(seen.count(s.snapshot_id) == 1, "snapshot listed %d times" % seen.count(s.snapshot_id))
    check(pages >= 2, "4 snapshots in one page of 2")
    expect_code(SC.ABORTED, ctl.ListSnapshots, pb.ListSnapshotsRequest(starting_token="bogus"))
    for s in sv + [sw]:
        c.delete_snapshot(s.snapshot_id)
    r = ctl.ListSnapshots(pb.ListSnapshotsRequest(source_volume_id=v.volume_id))
    check(len(r.entries) == 0, "deleted snapshots are listed")
    c.delete(v.volume_id)
    c.delete(w.volume_id)


# ---- node ----

@case("node")
def node_info_and_capabilities(c):
    r = c.node.NodeGetInfo(c.pb.NodeGetInfoRequest())
    check(r.node_id, "no node id")
    r = c.node.NodeGetCapabilities(c.pb.NodeGetCapabilitiesRequest())
    T = c.pb.NodeServiceCapability.RPC
    check(T.GET_VOLUME_STATS in {cap.rpc.type for cap in r.capabilities}, "no GET_VOLUME_STATS")


def mounted(path):
    """Is path a mount point? (A bind mount from the same file system has
    its parent's st_dev, so os.path.ismount cannot tell.)"""
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def target(c, name):
    return os.path.join(c.workdir, "targets", name)


@case("node")
def publish_arguments(c):
    pb, node = c.pb, c.node
    v = c.create(uniq("pubargs"))
    t = target(c, uniq("t"))
    expect_code(SC.INVALID_ARGUMENT, node.NodePublishVolume,
                pb.NodePublishVolumeRequest(target_path=t, volume_capability=c.cap()))
    expect_code(SC.INVALID_ARGUMENT, node.NodePublishVolume,
                pb.NodePublishVolumeRequest(volume_id=v.volume_id, volume_capability=c.cap()))
    expect_code(SC.INVALID_ARGUMENT, node.NodePublishVolume,
                pb.NodePublishVolumeRequest(volume_id=v.volume_id, target_path=t))
    expect_code(SC.NOT_FOUND, c.publish, "no-such-dot:master", t)
    expect_code(SC.INVALID_ARGUMENT, node.NodeUnpublishVolume,
                pb.NodeUnpublishVolumeRequest(target_path=t))
    expect_code(SC.INVALID_ARGUMENT, node.NodeUnpublishVolume,
                pb.NodeUnpublishVolumeRequest(volume_id=v.volume_id))
    c.delete(v.volume_id)


@case("node")
def publish_unpublish(c):
    v = c.create(uniq("pub"))
    t = target(c, uniq("t"))
    c.publish(v.volume_id, t)
    check(mounted(t), "%s is not a mount point" % t)
    with open(os.path.join(t, "hello"), "w") as f:
        f.write("world")
    c.publish(v.volume_id, t)  # again, the same: success
    expect_code(SC.ALREADY_EXISTS, c.publish, v.volume_id, t, readonly=True)
    expect_code(SC.FAILED_PRECONDITION, c.delete, v.volume_id)
    c.unpublish(v.volume_id, t)
    check(not os.path.exists(t), "the target path is still there")
    c.unpublish(v.volume_id, t)  # again: success
    # what was written stays in the volume: published again, it is there
    c.publish(v.volume_id, t)
    with open(os.path.join(t, "hello")) as f:
        check(f.read() == "world", "the file written is gone")
    c.unpublish(v.volume_id, t)
    c.delete(v.volume_id)


@case("node")
def publish_read_only(c):
    v = c.create(uniq("ro"))
    t = target(c, uniq("rw"))
    c.publish(v.volume_id, t)
    with open(os.path.join(t, "f"), "w") as f:
        f.write("x")
    c.unpublish(v.volume_id, t)
    ro = target(c, uniq("ro"))
    c.publish(v.volume_id, ro, readonly=True)
    check(open(os.path.join(ro, "f")).read() == "x", "read-only publish does not show the data")
    try:
        open(os.path.join(ro, "g"), "w").close()
        raise Failed("a read-only publish could be written")
    except OSError as e:
        check(e.errno == errno.EROFS, "writing failed with %s, not EROFS" % e)
    c.unpublish(v.volume_id, ro)
    c.delete(v.volume_id)


@case("node")
def publish_single_writer(c):
    mode = c.pb.VolumeCapability.AccessMode.SINGLE_NODE_SINGLE_WRITER
    v = c.create(uniq("single"), caps=[c.cap(mode)])
    a, b = target(c, uniq("a")), target(c, uniq("b"))
    c.publish(v.volume_id, a, mode=mode)
    expect_code(SC.FAILED_PRECONDITION, c.publish, v.volume_id, b, mode=mode)
    c.unpublish(v.volume_id, a)
    c.delete(v.volume_id)


@case("node")
def volume_stats(c):
    pb, node = c.pb, c.node
    v = c.create(uniq("stats"), size=64 << 20)
    t = target(c, uniq("t"))
    c.publish(v.volume_id, t)
    with open(os.path.join(t, "data"), "wb") as f:
        f.write(os.urandom(1 << 20))
    r = node.NodeGetVolumeStats(pb.NodeGetVolumeStatsRequest(volume_id=v.volume_id, volume_path=t))
    usage = [u for u in r.usage if u.unit == pb.VolumeUsage.BYTES]
    check(usage, "no usage in bytes")
    check(usage[0].used >= 1 << 20, "used %d < 1 MiB written" % usage[0].used)
    check(usage[0].total == 64 << 20, "total %d is not the capacity" % usage[0].total)
    expect_code(SC.INVALID_ARGUMENT, node.NodeGetVolumeStats,
                pb.NodeGetVolumeStatsRequest(volume_path=t))
    expect_code(SC.INVALID_ARGUMENT, node.NodeGetVolumeStats,
                pb.NodeGetVolumeStatsRequest(volume_id=v.volume_id))
    expect_code(SC.NOT_FOUND, node.NodeGetVolumeStats,
                pb.NodeGetVolumeStatsRequest(volume_id="no-such-dot:master", volume_path=t))
    expect_code(SC.NOT_FOUND, node.NodeGetVolumeStats,
                pb.NodeGetVolumeStatsRequest(volume_id=v.volume_id,
                                             volume_path=target(c, "nowhere")))
    c.unpublish(v.volume_id, t)
    c.delete(v.volume_id)


# ---- errors ----

@case("errors")
def unimplemented(c):
    pb = c.pb
    expect_code(SC.UNIMPLEMENTED, c.controller.ControllerPublishVolume,
                pb.ControllerPublishVolumeRequest(volume_id="x", node_id="y"))
    expect_code(SC.UNIMPLEMENTED, c.node.NodeStageVolume,
                pb.NodeStageVolumeRequest(volume_id="x", staging_target_path="/tmp"))
    expect_code(SC.UNIMPLEMENTED, c.controller.ControllerExpandVolume,
                pb.ControllerExpandVolumeRequest(volume_id="x"))


@case("errors")
def bad_capacity_range(c):
    pb = c.pb
    req = pb.CreateVolumeRequest(name=uniq("range"), volume_capabilities=[c.cap()],
                                 capacity_range=pb.CapacityRange(required_bytes=2 << 20,
                                                                 limit_bytes=1 << 20))
    expect_code(SC.OUT_OF_RANGE, c.controller.CreateVolume, req)


@case("errors")
def aborted_while_running(c):
    # a clone commits its source first: with 96 MiB to read, the second
    # CreateVolume of the same name arrives while the first runs
    src = c.create(uniq("busy"))
    t = target(c, uniq("fill"))
    c.publish(src.volume_id, t)
    for i in range(48):
        with open(os.path.join(t, "f%02d" % i), "wb") as f:
            f.write(os.urandom(2 << 20))
    c.unpublish(src.volume_id, t)
    name = uniq("busyclone")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(c.create, name, volume=src.volume_id)
        time.sleep(0.1)
        second = csiclient.code_of(c.create, name, volume=src.volume_id)
        v = first.result()
    check(second == SC.ABORTED, "the second call ended %s, not ABORTED" % second.name)
    check(c.create(name, volume=src.volume_id).volume_id == v.volume_id,
          "after the first ended, the name answers another volume")
    c.delete(v.volume_id)
    c.delete(src.volume_id)


def main():
    if len(sys.argv) < 4:
        sys.stderr.write(__doc__)
        return 2
    sock, workdir, groups = sys.argv[1], sys.argv[2], sys.argv[3:]
    c = csiclient.Client(sock, os.path.join(workdir, "stubs"))
    c.workdir = workdir
    os.makedirs(os.path.join(workdir, "targets"), exist_ok=True)
    failed = passed = 0
    for g in groups:
        if g not in CASES:
            sys.stderr.write("unknown group %r (have: %s)\n" % (g, ", ".join(sorted(CASES))))
            return 2
        for fn in CASES[g]:
            try:
                fn(c)
                print("ok - %s %s" % (g, fn.__name__))
                passed += 1
            except Failed as e:
                print("FAIL - %s %s: %s" % (g, fn.__name__, e))
                failed += 1
            except grpc.RpcError as e:
                print("FAIL - %s %s: %s: %s" % (g, fn.__name__, e.code().name, e.details()))
                failed += 1
            except Exception:
                print("FAIL - %s %s: %s" % (g, fn.__name__, traceback.format_exc()))
                failed += 1
            sys.stdout.flush()
    print("csi %s: %d cases passed, %d failed" % (" ".join(groups), passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
