#!/usr/bin/env python3
"""Check that every pod template in the given manifests meets Pod Security "restricted".

    pod_security.py deploy/k8s/*.yaml

The rules are those of the Kubernetes Pod Security Standards, "restricted" profile
(kubernetes.io/docs/concepts/security/pod-security-standards), which includes
"baseline"; on top, this repository's own: every container and init container sets its
securityContext itself (runAsNonRoot, runAsUser 10001, allowPrivilegeEscalation false,
capabilities drop ALL, readOnlyRootFilesystem, seccompProfile RuntimeDefault).
Prints one line per violation and exits 1 if there is any.
"""

import sys

import yaml

ALLOWED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
    "persistentVolumeClaim", "projected", "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes",
}
OWN_CONTAINER_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
}


def pod_specs(doc):
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        yield spec
    elif kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}:
        yield spec["template"]["spec"]
    elif kind == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]


def check_pod(pod, where):
    bad = []
    psc = pod.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            bad.append(f"{where}: {field} is set")
    for vol in pod.get("volumes") or []:
        types = set(vol) - {"name"}
        if not types <= ALLOWED_VOLUMES:
            bad.append(f"{where}: volume {vol['name']} is of type {sorted(types)}")
    for sysctl in psc.get("sysctls") or []:
        if sysctl["name"] not in SAFE_SYSCTLS:
            bad.append(f"{where}: sysctl {sysctl['name']}")
    if psc.get("runAsUser") == 0:
        bad.append(f"{where}: pod runAsUser 0")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    if pod_seccomp not in (None, "RuntimeDefault", "Localhost"):
        bad.append(f"{where}: pod seccompProfile {pod_seccomp}")
    containers = [("container", c) for c in pod.get("containers") or []]
    containers += [("initContainer", c) for c in pod.get("initContainers") or []]
    containers += [("ephemeralContainer", c) for c in pod.get("ephemeralContainers") or []]
    for role, c in containers:
        at = f"{where} {role} {c['name']}"
        sc = c.get("securityContext")
        if sc is None:
            bad.append(f"{at}: no securityContext")
            sc = {}
        if sc.get("privileged"):
            bad.append(f"{at}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{at}: allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            bad.append(f"{at}: capabilities do not drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            bad.append(f"{at}: adds capabilities {caps['add']}")
        if not (sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
            bad.append(f"{at}: runAsNonRoot is not true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            bad.append(f"{at}: runs as UID 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{at}: seccompProfile is {seccomp!r}, not RuntimeDefault")
        if sc.get("procMount", "Default") != "Default":
            bad.append(f"{at}: procMount {sc['procMount']}")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                bad.append(f"{at}: hostPort {port['hostPort']}")
        se_type = (sc.get("seLinuxOptions") or {}).get("type")
        if se_type not in (None, "", "container_t", "container_init_t", "container_kvm_t"):
            bad.append(f"{at}: seLinuxOptions.type {se_type}")
        # This repository's own rule: each container states its context in full.
        for key, want in OWN_CONTAINER_CONTEXT.items():
            if sc.get(key) != want:
                bad.append(f"{at}: securityContext.{key} is {sc.get(key)!r}, want {want!r}")
        if (sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            bad.append(f"{at}: securityContext.seccompProfile.type is not RuntimeDefault")
    return bad


def main(paths):
    bad, pods = [], 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for doc in yaml.safe_load_all(f):
                if not doc:
                    continue
                name = f"{path}: {doc['kind']}/{doc['metadata']['name']}"
                for pod in pod_specs(doc):
                    pods += 1
                    bad += check_pod(pod, name)
    for line in bad:
        print(line)
    if bad:
        print(f"Pod Security restricted: {len(bad)} violation(s)")
        return 1
    print(f"Pod Security restricted: {pods} pod template(s) pass")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
