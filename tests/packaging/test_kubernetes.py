"""The Kubernetes manifests in dist/kubernetes/, checked offline:

- every document against the API types of Debian's python3-kubernetes
  (k8s_schema.py: unknown fields, wrong types, missing required fields), and
  the checker itself refuses broken copies (so that it can fail);
- what an operator expects of them: ppfwd containers non-root (except the
  transparent variant, the only one with NET_ADMIN), read-only root, no
  privilege escalation, every capability dropped but NET_BIND_SERVICE,
  probes on /healthz at the metrics port that the mounted ConfigMap's
  `metrics:` names, requests and a memory limit, the ConfigMap mounted as a
  directory (a subPath mount never sees an update), Services selecting pods;
- every ConfigMap's ppfwd.yaml passes `ppfwd check -c` (the Service host
  names resolved from a hosts file in a chroot with the static ppfwd when
  possible, else replaced by 127.0.0.1 for $PPFWD);
- `kubectl kustomize dist/kubernetes` renders offline, where kubectl is.

SKIP (with the reason) without python3-kubernetes (scripts/deps.sh test
installs it).
"""

import copy
import glob
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)

from harness import (PPFWD, ROOT, Fail, Skip, check, eq, run, scenario, tmpdir)  # noqa: E402

try:
    import yaml
    from k8s_schema import validate
    WHY_NOT = None
except ImportError as e:
    WHY_NOT = "python3-kubernetes not installed (%s; scripts/deps.sh test installs it)" % e

DIR = os.path.join(ROOT, "dist/kubernetes")
# Keys of the contract that this build may not know yet (their branch has
# not landed): a ConfigMap using one is checked once it does.
LATER_KEYS = ("transparent",)


def manifests():
    if WHY_NOT:
        raise Skip(WHY_NOT)
    docs = []
    for path in sorted(glob.glob(os.path.join(DIR, "*.yaml"))):
        if os.path.basename(path) == "kustomization.yaml":
            continue
        with open(path) as f:
            for i, d in enumerate(yaml.safe_load_all(f)):
                if d is not None:
                    docs.append(("%s#%d" % (os.path.basename(path), i), d))
    check(len(docs) >= 8, "manifests found: %s" % [w for w, _ in docs])
    return docs


def of_kind(docs, kind):
    return [(w, d) for w, d in docs if d["kind"] == kind]


def workloads(docs):
    return of_kind(docs, "Deployment") + of_kind(docs, "DaemonSet")


@scenario
def k8s_schema_valid():
    docs = manifests()
    problems = []
    for where, d in docs:
        problems += validate(d, where)
    eq(problems, [], "schema problems")
    kinds = sorted({d["kind"] for _, d in docs})
    eq(kinds, ["ConfigMap", "DaemonSet", "Deployment", "PodDisruptionBudget", "Service"], "kinds")


@scenario
def k8s_schema_checker_refuses_broken_copies():
    docs = manifests()
    dep = next(d for _, d in of_kind(docs, "Deployment"))
    broken = []
    d = copy.deepcopy(dep)
    d["spec"]["template"]["spec"]["containers"][0]["bogusField"] = 1
    broken.append(("unknown field", d))
    d = copy.deepcopy(dep)
    d["spec"]["replicas"] = "two"
    broken.append(("string replicas", d))
    d = copy.deepcopy(dep)
    d["spec"]["template"]["spec"]["containers"][0]["ports"] = {"containerPort": 80}
    broken.append(("map for a list", d))
    d = copy.deepcopy(dep)
    del d["spec"]["template"]["spec"]["containers"]
    broken.append(("required containers missing", d))
    d = copy.deepcopy(dep)
    d["kind"] = "Deploymnet"
    broken.append(("unknown kind", d))
    for what, d in broken:
        check(validate(d, what) != [], "the checker accepted a Deployment with %s" % what)


def ppfwd_containers(docs):
    for where, w in workloads(docs):
        pod = w["spec"]["template"]["spec"]
        for c in pod["containers"]:
            if "ppfwd" in c["image"]:
                yield where, w, pod, c


def metrics_port_of(docs, pod):
    vol = next(v for v in pod["volumes"] if "configMap" in v)
    cm = next(d for _, d in of_kind(docs, "ConfigMap")
              if d["metadata"]["name"] == vol["configMap"]["name"])
    cfg = yaml.safe_load(cm["data"]["ppfwd.yaml"])
    return int(str(cfg["metrics"]).rsplit(":", 1)[1]), vol


@scenario
def k8s_security_and_probes():
    docs = manifests()
    seen = 0
    for where, w, pod, c in ppfwd_containers(docs):
        seen += 1
        transparent = w["metadata"]["labels"].get("app.kubernetes.io/component") == "transparent"
        sc, psc = c.get("securityContext", {}), pod.get("securityContext", {})
        caps = sc.get("capabilities", {})
        eq(caps.get("drop"), ["ALL"], "%s: capabilities dropped" % where)
        allowed = {"NET_BIND_SERVICE", "NET_ADMIN"} if transparent else {"NET_BIND_SERVICE"}
        check(set(caps.get("add", [])) <= allowed, "%s: capabilities added %s" % (where, caps))
        if transparent:
            check("NET_ADMIN" in caps.get("add", []), "%s: transparent without NET_ADMIN" % where)
        else:
            check(sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True,
                  "%s: runAsNonRoot" % where)
            check(sc.get("runAsUser", psc.get("runAsUser", 0)) != 0, "%s: runAsUser 0" % where)
        eq(sc.get("readOnlyRootFilesystem"), True, "%s: readOnlyRootFilesystem" % where)
        eq(sc.get("allowPrivilegeEscalation"), False, "%s: allowPrivilegeEscalation" % where)
        check(not sc.get("privileged"), "%s: privileged" % where)
        port, vol = metrics_port_of(docs, pod)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        eq(ports.get("metrics"), port, "%s: container port 'metrics' vs the config's metrics:" % where)
        for probe in ("readinessProbe", "livenessProbe"):
            get = c.get(probe, {}).get("httpGet", {})
            eq(get.get("path"), "/healthz", "%s: %s path" % (where, probe))
            check(get.get("port") in ("metrics", port), "%s: %s port %r" % (where, probe,
                                                                              get.get("port")))
        res = c.get("resources", {})
        check({"cpu", "memory"} <= set(res.get("requests", {})), "%s: requests %s" % (where, res))
        check("memory" in res.get("limits", {}), "%s: memory limit" % where)
        mounts = [m for m in c["volumeMounts"] if m["name"] == vol["name"]]
        eq(len(mounts), 1, "%s: config mounts" % where)
        check("subPath" not in mounts[0], "%s: a subPath mount never sees ConfigMap updates" % where)
        eq(mounts[0]["mountPath"], "/etc/ppfwd", "%s: config mount path" % where)
        check("/etc/ppfwd/ppfwd.yaml" in c["args"], "%s: args %s" % (where, c["args"]))
        # A ConfigMap update reaches the mounted directory, not the process.
        check("--watch" in c["args"], "%s: no --watch in args %s" % (where, c["args"]))
        check(pod.get("terminationGracePeriodSeconds", 30) > 10,
              "%s: grace period shorter than the 10 s drain" % where)
    check(seen == 3, "ppfwd containers found: %d (want Deployment, DaemonSet, transparent)" % seen)
    labels = [w["spec"]["template"]["metadata"]["labels"] for _, w in workloads(docs)]
    for where, s in of_kind(docs, "Service"):
        sel = s["spec"]["selector"]
        check(any(all(lb.get(k) == v for k, v in sel.items()) for lb in labels),
              "%s: the selector %s matches no pod template" % (where, sel))


HOSTNAME = re.compile(r"\b([a-z][a-z0-9-]*(\.[a-z0-9-]+)*\.svc\.cluster\.local)\b")


def ppfwd_check(where, text):
    """Runs ppfwd check -c on a ConfigMap's ppfwd.yaml; returns (rc, output)."""
    names = sorted({m.group(1) for m in HOSTNAME.finditer(text)})
    static = os.path.join(ROOT, "build/static/ppfwd")
    if os.geteuid() == 0 and os.access(static, os.X_OK) and shutil.which("chroot"):
        # As in the cluster: the names as they are, resolved (here from a
        # hosts file; cluster DNS there) by the image's binary.
        from rootfs import bare_root, run_in
        hosts = "".join("127.0.0.1\t%s\n" % n for n in names)
        root = bare_root(static, {"/etc/hosts": hosts, "/c.yaml": text})
        r = run_in(root, ["check", "-c", "/c.yaml"])
    else:
        for n in names:
            text = text.replace(n, "127.0.0.1")
        path = os.path.join(tmpdir(), "c.yaml")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([PPFWD, "check", "-c", path], capture_output=True, text=True,
                           timeout=20)
    return r.returncode, r.stdout + r.stderr


def configmaps_check(transparent):
    docs = manifests()
    n = 0
    for where, cm in of_kind(docs, "ConfigMap"):
        text = cm["data"]["ppfwd.yaml"]
        if any(("%s:" % k) in text for k in LATER_KEYS) != transparent:
            continue
        n += 1
        rc, out = ppfwd_check(where, text)
        if rc != 0 and "unknown key" in out and any(k in out for k in LATER_KEYS):
            raise Skip("%s uses a key this build does not know yet: %s" % (where, out.strip()))
        eq(rc, 0, "%s: ppfwd check -c (%s)" % (where, out.strip()))
    check(n >= 1, "no ConfigMap checked")


@scenario
def k8s_configmaps_pass_ppfwd_check():
    configmaps_check(False)


@scenario
def k8s_transparent_configmap_passes_ppfwd_check():
    configmaps_check(True)


@scenario
def k8s_kustomize_renders():
    manifests()
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise Skip("kubectl not installed (the schema check above does not need it)")
    r = subprocess.run([kubectl, "kustomize", DIR], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, KUBECONFIG="/nonexistent"))
    eq(r.returncode, 0, "kubectl kustomize (%s)" % r.stderr.strip())
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(r.stdout) if d)
    eq(kinds, ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "Service"],
       "kinds rendered by kustomize")


if __name__ == "__main__":
    sys.exit(run())
