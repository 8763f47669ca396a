#!/usr/bin/python3
"""csictl.py SOCKET WORKDIR COMMAND [ARGS] - one CSI call from the shell.

What the kubelet and the sidecars would send, one call at a time, for the
end-to-end scripts, the cluster test and bench/csi.sh. Stubs are compiled
into WORKDIR/stubs from the tree's csi.proto (once). Prints ids and values
on stdout; a failed call prints "CODE: message" on stderr and exits 1.

  create NAME [--size BYTES] [--snapshot ID] [--volume ID] [--param K=V]...
                                  the new volume's id
  delete VOLUME_ID
  snapshot NAME VOLUME_ID [--wait]  the snapshot's id (--wait: until ready)
  delete-snapshot SNAPSHOT_ID
  publish VOLUME_ID TARGET [--ro]
  unpublish VOLUME_ID TARGET
  stats VOLUME_ID PATH            bytes used, then total
  volumes | snapshots             one id per line (every page)
  info                            the node id
  name                            the driver's name (GetPluginInfo)
  topology                        NodeGetInfo's topology, KEY=VALUE lines
  plugin-caps                     GetPluginCapabilities' services
  time N create|snapshot ...      runs the call N times (names get -I), and
                                  prints each call's milliseconds
"""

import os
import sys
import time

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import csiclient  # noqa: E402


def opts(args, flags):
    """Splits args into positionals and {--flag: [values]} (flags with values)."""
    pos, out, i = [], {}, 0
    while i < len(args):
        a = args[i]
        if a in flags:
            if flags[a]:
                out.setdefault(a, []).append(args[i + 1])
                i += 1
            else:
                out.setdefault(a, []).append(True)
        else:
            pos.append(a)
        i += 1
    return pos, out


def run(c, cmd, args):
    pb = c.pb
    if cmd == "create":
        pos, o = opts(args, {"--size": 1, "--snapshot": 1, "--volume": 1, "--param": 1})
        params = dict(p.split("=", 1) for p in o.get("--param", []))
        v = c.create(pos[0], size=int(o.get("--size", [0])[0]),
                     snapshot=o.get("--snapshot", [None])[0],
                     volume=o.get("--volume", [None])[0], params=params)
        return v.volume_id
    if cmd == "delete":
        c.delete(args[0])
        return None
    if cmd == "snapshot":
        pos, o = opts(args, {"--wait": 0})
        s = c.snapshot(pos[0], pos[1])
        deadline = time.time() + 600
        while o.get("--wait") and not s.ready_to_use and time.time() < deadline:
            time.sleep(0.05)
            r = c.controller.ListSnapshots(pb.ListSnapshotsRequest(snapshot_id=s.snapshot_id))
            s = r.entries[0].snapshot
        return s.snapshot_id
    if cmd == "delete-snapshot":
        c.delete_snapshot(args[0])
        return None
    if cmd == "publish":
        pos, o = opts(args, {"--ro": 0})
        c.publish(pos[0], pos[1], readonly=bool(o.get("--ro")))
        return None
    if cmd == "unpublish":
        c.unpublish(args[0], args[1])
        return None
    if cmd == "stats":
        r = c.node.NodeGetVolumeStats(pb.NodeGetVolumeStatsRequest(volume_id=args[0],
                                                                   volume_path=args[1]))
        u = [u for u in r.usage if u.unit == pb.VolumeUsage.BYTES][0]
        return "%d\n%d" % (u.used, u.total)
    if cmd in ("volumes", "snapshots"):
        ids, token = [], ""
        while True:
            if cmd == "volumes":
                r = c.controller.ListVolumes(pb.ListVolumesRequest(max_entries=50, starting_token=token))
                ids += [e.volume.volume_id for e in r.entries]
            else:
                r = c.controller.ListSnapshots(pb.ListSnapshotsRequest(max_entries=50, starting_token=token))
                ids += [e.snapshot.snapshot_id for e in r.entries]
            token = r.next_token
            if not token:
                return "\n".join(ids) if ids else None
    if cmd == "info":
        return c.node.NodeGetInfo(pb.NodeGetInfoRequest()).node_id
    if cmd == "topology":
        r = c.node.NodeGetInfo(pb.NodeGetInfoRequest())
        segs = r.accessible_topology.segments
        return "\n".join("%s=%s" % (k, segs[k]) for k in sorted(segs)) or None
    if cmd == "plugin-caps":
        r = c.identity.GetPluginCapabilities(pb.GetPluginCapabilitiesRequest())
        T = pb.PluginCapability.Service.Type
        return "\n".join(T.Name(x.service.type) for x in r.capabilities if x.HasField("service"))
    if cmd == "name":
        return c.identity.GetPluginInfo(pb.GetPluginInfoRequest()).name
    if cmd == "time":
        n, what, rest = int(args[0]), args[1], args[2:]
        lines = []
        for i in range(n):
            a = list(rest)
            a[0] = "%s-%d" % (a[0], i) if n > 1 else a[0]
            t0 = time.perf_counter()
            run(c, what, a)
            lines.append("%.3f" % ((time.perf_counter() - t0) * 1000))
        return "\n".join(lines)
    raise SystemExit("unknown command %r\n%s" % (cmd, __doc__))


def main():
    if len(sys.argv) < 4:
        sys.stderr.write(__doc__)
        return 2
    c = csiclient.Client(sys.argv[1], os.path.join(sys.argv[2], "stubs"))
    try:
        out = run(c, sys.argv[3], sys.argv[4:])
    except grpc.RpcError as e:
        sys.stderr.write("%s: %s\n" % (e.code().name, e.details()))
        return 1
    if out is not None:
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
