#!/usr/bin/python3
"""check_deploy.py DIR DRIVER_NAME - checks deploy/kubernetes/ (DIR).

Every YAML file parses, every object has apiVersion, kind and a name; the
driver's name is DRIVER_NAME (what dmd answers in GetPluginInfo) in the
CSIDriver, the StorageClass, the VolumeSnapshotClass and the kubelet's
plugin paths; dmd's --csi-socket, the registrar's and the sidecars'
--csi-address and the volumes behind them agree; every service account a
workload runs as exists; the image node.yaml runs is the Dockerfile's tag.
Prints one line per problem, exits 1 when there is any.
"""

import glob
import os
import re
import sys

import yaml

problems = []


def bad(msg):
    problems.append(msg)


def main():
    d, driver = sys.argv[1], sys.argv[2]
    objs = []
    for path in sorted(glob.glob(os.path.join(d, "*.yaml"))):
        try:
            docs = [x for x in yaml.safe_load_all(open(path)) if x is not None]
        except yaml.YAMLError as e:
            bad("%s: not valid YAML: %s" % (path, e))
            continue
        for o in docs:
            for k in ("apiVersion", "kind"):
                if k not in o:
                    bad("%s: an object without %s" % (path, k))
            if not (o.get("metadata") or {}).get("name"):
                bad("%s: a %s without a name" % (path, o.get("kind")))
            objs.append((os.path.basename(path), o))
    by_kind = {}
    for f, o in objs:
        by_kind.setdefault(o.get("kind"), []).append(o)

    def one(kind):
        os_ = by_kind.get(kind, [])
        if len(os_) != 1:
            bad("%d objects of kind %s, not one" % (len(os_), kind))
            return {}
        return os_[0]

    if one("CSIDriver").get("metadata", {}).get("name") != driver:
        bad("the CSIDriver is not named %s" % driver)
    if one("CSIDriver").get("spec", {}).get("attachRequired") is not False:
        bad("the CSIDriver must say attachRequired: false (dm has no ControllerPublish)")
    if one("StorageClass").get("provisioner") != driver:
        bad("the StorageClass's provisioner is not %s" % driver)
    if one("VolumeSnapshotClass").get("driver") != driver:
        bad("the VolumeSnapshotClass's driver is not %s" % driver)

    ds, dep = one("DaemonSet"), one("Deployment")
    plugin_dir = "/var/lib/kubelet/plugins/%s" % driver

    def pod(o):
        return o.get("spec", {}).get("template", {}).get("spec", {})

    def host_path(o, name):
        for v in pod(o).get("volumes", []):
            if v.get("name") == name and "hostPath" in v:
                return v["hostPath"]["path"]
        return None

    def mount_of(c, path):
        """The volume c mounts at path."""
        for m in c.get("volumeMounts", []):
            if m["mountPath"] == path:
                return m["name"]
        return None

    def arg(c, name):
        for a in c.get("args", []):
            if a.startswith(name + "="):
                return a.split("=", 1)[1]
        return None

    def sock_dir(o, c, sock):
        """The host directory where container c of o finds socket path sock."""
        vol = mount_of(c, os.path.dirname(sock))
        return host_path(o, vol) if vol else None

    # dmd: its --csi-socket (in the start script of its ConfigMap)
    cms = {o["metadata"]["name"]: o for o in by_kind.get("ConfigMap", [])}
    containers = {c["name"]: c for c in pod(ds).get("containers", [])}
    dmd = containers.get("dmd", {})
    script = ""
    for v in pod(ds).get("volumes", []):
        if "configMap" in v and mount_of(dmd, "/start") == v["name"]:
            script = "".join(cms.get(v["configMap"]["name"], {}).get("data", {}).values())
    m = re.search(r"^\s*sock=(\S+)", script, re.M)
    if not m or not re.search(r'--csi-socket "\$sock"', script):
        bad("dmd's start script runs no dmd start --csi-socket \"$sock\" with sock=PATH")
        return
    sock = m.group(1)
    dmd_dir = sock_dir(ds, dmd, sock)
    if dmd_dir != plugin_dir:
        bad("dmd's socket %s is in host directory %s, not the kubelet's %s" % (sock, dmd_dir, plugin_dir))
    for flag in ("--foreground", "--no-plugin", "--csi-socket"):
        if "dmd start" in script and flag not in script:
            bad("dmd's start script lacks %s" % flag)
    reg = containers.get("node-driver-registrar", {})
    addr = arg(reg, "--csi-address")
    if not addr or sock_dir(ds, reg, addr) != plugin_dir or os.path.basename(addr) != os.path.basename(sock):
        bad("the registrar's --csi-address %s is not dmd's socket" % addr)
    if arg(reg, "--kubelet-registration-path") != os.path.join(plugin_dir, os.path.basename(sock)):
        bad("the registrar registers %s, not %s" % (arg(reg, "--kubelet-registration-path"),
                                                 os.path.join(plugin_dir, os.path.basename(sock))))
    if host_path(ds, mount_of(reg, "/registration")) != "/var/lib/kubelet/plugins_registry":
        bad("the registrar's /registration is not the kubelet's plugins_registry")
    pods = [m for m in dmd.get("volumeMounts", []) if m["mountPath"] == "/var/lib/kubelet/pods"]
    if not pods or pods[0].get("mountPropagation") != "Bidirectional":
        bad("dmd must mount /var/lib/kubelet/pods with Bidirectional propagation")
    if not dmd.get("securityContext", {}).get("privileged"):
        bad("dmd must run privileged (it bind-mounts)")
    for c in pod(dep).get("containers", []):
        a = arg(c, "--csi-address")
        if not a or sock_dir(dep, c, a) != plugin_dir or os.path.basename(a) != os.path.basename(sock):
            bad("%s's --csi-address %s is not dmd's socket" % (c["name"], a))
    names = {c["name"] for c in pod(dep).get("containers", [])}
    if names != {"csi-provisioner", "csi-snapshotter"}:
        bad("the controller runs %s, not the provisioner and the snapshotter" % sorted(names))

    sas = {(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in by_kind.get("ServiceAccount", [])}
    for o in (ds, dep):
        sa = (o["metadata"].get("namespace"), pod(o).get("serviceAccountName"))
        if sa not in sas:
            bad("%s runs as service account %s, which rbac.yaml does not make" % (o["metadata"]["name"], sa))
    for rb in by_kind.get("ClusterRoleBinding", []) + by_kind.get("RoleBinding", []):
        for s in rb.get("subjects", []):
            if (s.get("namespace"), s["name"]) not in sas:
                bad("binding %s names an unknown service account %s" % (rb["metadata"]["name"], s["name"]))
    dockerfile = open(os.path.join(d, "Dockerfile")).read()
    tag = re.search(r"-t (\S+) \.", dockerfile)
    if not tag or dmd.get("image") != tag.group(1):
        bad("node.yaml runs image %s, the Dockerfile builds %s" % (dmd.get("image"), tag and tag.group(1)))


main()
for p in problems:
    print(p)
print("%d problems" % len(problems) if problems else "deploy/kubernetes: ok")
sys.exit(1 if problems else 0)
