"""csiclient.py - the gRPC client side of dm's CSI tests.

Compiles src/server/api/csi/csi.proto into Python stubs (grpc_tools, the
Debian package python3-grpc-tools) in a directory of the caller's, against
grpc_tools' own copy of Google's well-known types, imports them, and opens
the three services on a unix socket. Run with /usr/bin/python3, whose
grpcio and protobuf are Debian's.
"""

import importlib
import os
import sys

import grpc
from grpc_tools import protoc

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PROTO_DIR = os.path.join(SOURCE, "src", "server", "api", "csi")


def stubs(out_dir):
    """Generates csi_pb2 and csi_pb2_grpc into out_dir; returns (pb, grpc module)."""
    os.makedirs(out_dir, exist_ok=True)
    proto = os.path.join(PROTO_DIR, "csi.proto")
    made = os.path.join(out_dir, "csi_pb2_grpc.py")
    if os.path.exists(made) and os.path.getmtime(made) >= os.path.getmtime(proto):
        sys.path.insert(0, out_dir)
        return importlib.import_module("csi_pb2"), importlib.import_module("csi_pb2_grpc")
    wkt = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    rc = protoc.main([
        "grpc_tools.protoc",
        "-I" + wkt,  # Google's real wrappers.proto and timestamp.proto first
        "-I" + PROTO_DIR,
        "--python_out=" + out_dir,
        "--grpc_python_out=" + out_dir,
        os.path.join(PROTO_DIR, "csi.proto"),
    ])
    if rc != 0:
        raise RuntimeError("protoc failed on csi.proto (%d)" % rc)
    sys.path.insert(0, out_dir)
    return importlib.import_module("csi_pb2"), importlib.import_module("csi_pb2_grpc")


class Client:
    """The Identity, Controller and Node services on socket path."""

    def __init__(self, path, out_dir):
        self.pb, self.g = stubs(out_dir)
        self.channel = grpc.insecure_channel("unix://" + path)
        self.identity = self.g.IdentityStub(self.channel)
        self.controller = self.g.ControllerStub(self.channel)
        self.node = self.g.NodeStub(self.channel)

    def cap(self, mode=1, block=False):
        """A volume capability: a mount volume (or a block one), access mode."""
        pb = self.pb
        c = pb.VolumeCapability(access_mode=pb.VolumeCapability.AccessMode(mode=mode))
        if block:
            c.block.SetInParent()
        else:
            c.mount.SetInParent()
        return c

    def create(self, name, size=0, snapshot=None, volume=None, params=None, caps=None):
        pb = self.pb
        req = pb.CreateVolumeRequest(name=name, volume_capabilities=caps or [self.cap()],
                                     parameters=params or {})
        if size:
            req.capacity_range.required_bytes = size
        if snapshot:
            req.volume_content_source.snapshot.snapshot_id = snapshot
        if volume:
            req.volume_content_source.volume.volume_id = volume
        return self.controller.CreateVolume(req).volume

    def delete(self, volume_id):
        self.controller.DeleteVolume(self.pb.DeleteVolumeRequest(volume_id=volume_id))

    def snapshot(self, name, volume_id):
        return self.controller.CreateSnapshot(
            self.pb.CreateSnapshotRequest(name=name, source_volume_id=volume_id)).snapshot

    def delete_snapshot(self, snapshot_id):
        self.controller.DeleteSnapshot(self.pb.DeleteSnapshotRequest(snapshot_id=snapshot_id))

    def publish(self, volume_id, target, readonly=False, mode=1):
        self.node.NodePublishVolume(self.pb.NodePublishVolumeRequest(
            volume_id=volume_id, target_path=target, readonly=readonly,
            volume_capability=self.cap(mode)))

    def unpublish(self, volume_id, target):
        self.node.NodeUnpublishVolume(
            self.pb.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=target))


def code_of(call, *args, **kwargs):
    """The gRPC status code call(...) ends with (grpc.StatusCode.OK when it succeeds)."""
    try:
        call(*args, **kwargs)
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK
