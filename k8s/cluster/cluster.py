#!/usr/bin/env python3
"""A real Kubernetes cluster on one Linux host with no Docker: `make cluster-up` / `make cluster-down`.

It is a cluster *provider*, like kind or minikube, for machines that cannot run those (CI here has no Docker
engine and no Docker Hub). Everything comes from registries: the control plane, kubelet, kube-proxy and kubectl
from the k8s.io/kubernetes Go module, etcd and CoreDNS from theirs, containerd, runc and the CNI plugins from
Debian (k8s/cluster/build.sh and host-packages.sh). The shape is k8s/cluster/cluster.toml: three nodes, one per
node pool, exactly as k8s/kind-cluster.yaml, so the same chart values and profile run on both.

    sudo python3 k8s/cluster/cluster.py up        # returns once every node is Ready and CoreDNS answers
    python3 k8s/cluster/cluster.py status
    sudo python3 k8s/cluster/cluster.py down      # stops what up started, by PID, and undoes its host changes
    export KUBECONFIG=var/cluster/kubeconfig

`up` refuses, saying why, when it cannot run: not root, not Linux, a missing binary or package, a port or CIDR
already taken, or another Kubernetes' iptables chains present. `down` works after a failed or partial `up`: it
kills by recorded PID (checked against the command line), then sweeps what those processes may have left
(containers of our cgroups, mounts under our directories, our iptables chains, links and sysctls), so the host is
left as it was found. Only the Python standard library is used, so it runs before any environment exists.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import ipaddress
import json
import os
import platform
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Iterable, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
STATE = Path(os.environ.get("TRIBUTARY_CLUSTER_STATE", REPO / "var" / "cluster"))
RUN = Path("/run/tributary-cluster")
CACHE = Path(os.environ.get("TRIBUTARY_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tributary")
CNI_BIN = Path("/usr/lib/cni")
CGROUP_FS = Path("/sys/fs/cgroup")
CGROUP_PARENT = "tributary"
SYSCTLS = {
    "net/ipv4/ip_forward": "1",
    "net/bridge/bridge-nf-call-iptables": "1",
    "net/bridge/bridge-nf-call-ip6tables": "1",
}
# Chains our components create (kube-proxy, kubelet, the CNI bridge/portmap plugins); up refuses when they exist.
CHAIN_PREFIXES = ("KUBE-", "CNI-")


class ClusterError(RuntimeError):
    """Something the user must fix; the message says what."""


def log(msg: str) -> None:
    print(f"cluster: {msg}", file=sys.stderr, flush=True)


# --- Configuration -----------------------------------------------------------------------------------------------


def read_versions() -> dict[str, str]:
    out = {}
    for line in (REPO / "k8s" / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


@dataclass(frozen=True)
class Node:
    name: str
    ip: str
    pool: str
    index: int
    control_plane: bool = False
    taints: tuple[str, ...] = ()
    gpus: int = 0

    @property
    def bridge(self) -> str:
        return f"trib-cni{self.index}"

    @property
    def run(self) -> Path:
        return RUN / self.name

    @property
    def home(self) -> Path:
        return STATE / "nodes" / self.name

    @property
    def socket(self) -> Path:
        return self.run / "containerd.sock"

    @property
    def images(self) -> Path:
        """containerd's root (its images): kept in the cache across up/down, like a kind node image, so a new
        cluster does not pull and unpack the Spark image's gigabytes again; `down --purge` removes it."""
        return CACHE / "cluster" / "nodes" / self.name / "containerd"

    @property
    def cgroup(self) -> str:
        return f"/{CGROUP_PARENT}/{self.name}"


@dataclass(frozen=True)
class Config:
    name: str
    net: dict
    ports: dict
    timeouts: dict
    storage: dict
    nodes: tuple[Node, ...]
    versions: dict = field(default_factory=dict)

    @property
    def control_plane(self) -> Node:
        return next(n for n in self.nodes if n.control_plane)

    def pod_subnet(self, node: Node) -> ipaddress.IPv4Network:
        return list(ipaddress.ip_network(self.net["pod_cidr"]).subnets(new_prefix=24))[node.index]

    @property
    def kubernetes_service_ip(self) -> str:
        return str(next(ipaddress.ip_network(self.net["service_cidr"]).hosts()))

    @property
    def server(self) -> str:
        return f"https://{self.control_plane.ip}:{self.ports['apiserver']}"

    @property
    def registry(self) -> str:
        return f"localhost:{self.ports['registry']}"

    def bin(self, component: str, name: str) -> Path:
        version = {
            "kubernetes": "LOCAL_KUBERNETES_VERSION",
            "etcd": "ETCD_VERSION",
            "coredns": "COREDNS_VERSION",
            "crane": "CRANE_VERSION",
        }[component]
        return CACHE / "cluster" / f"{component}-{self.versions[version]}" / "bin" / name


def load_config() -> Config:
    raw = tomllib.loads((HERE / "cluster.toml").read_text())
    nodes = tuple(
        Node(
            name=n["name"],
            ip=n["ip"],
            pool=n["pool"],
            index=i,
            control_plane=n.get("control_plane", False),
            taints=tuple(n.get("taints", ())),
            gpus=int(n.get("gpus", 0)),
        )
        for i, n in enumerate(raw["nodes"])
    )
    if sum(n.control_plane for n in nodes) != 1:
        raise ClusterError("k8s/cluster/cluster.toml must mark exactly one node control_plane = true")
    return Config(raw["name"], raw["network"], raw["ports"], raw["timeouts"], raw["storage"], nodes, read_versions())


# --- Small helpers ----------------------------------------------------------------------------------------------


def run(cmd: Sequence[str | Path], *, check: bool = True, input: str | None = None, quiet: bool = False,
        env: dict | None = None) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], input=input, text=True, capture_output=True, env=env)
    if check and res.returncode != 0:
        raise ClusterError(f"{' '.join(map(str, cmd))} failed ({res.returncode}): {res.stderr.strip() or res.stdout.strip()}")
    if not quiet and res.returncode != 0:
        log(f"(ignored) {' '.join(map(str, cmd))}: {res.stderr.strip()}")
    return res


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def wait_for(what: str, check, timeout: float, interval: float = 1.0, procs: Iterable[str] = ()) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for name in procs:
            if not alive(name):
                raise ClusterError(f"{name} exited while waiting for {what}; see {STATE / 'logs' / (name + '.log')}")
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last error on timeout
            last = exc
        time.sleep(interval)
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last error: {last})" if last else ""))


# --- Processes by PID -------------------------------------------------------------------------------------------


def pidfile(name: str) -> Path:
    return STATE / "pids" / f"{name}.json"


def start(name: str, cmd: Sequence[str | Path], env: dict | None = None) -> int:
    """Start a long-running component in its own session; record its PID and binary to stop it later."""
    logs = STATE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = open(logs / f"{name}.log", "ab")
    proc = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ, **(env or {})})
    write(pidfile(name), json.dumps({"pid": proc.pid, "exe": str(cmd[0])}))
    # Until the child has exec'd, /proc shows the forking Python: wait for the program, so `alive` can tell.
    deadline = time.monotonic() + 10
    while cmdline(proc.pid)[:1] != [str(cmd[0])] and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc.pid


def recorded(name: str) -> dict | None:
    try:
        return json.loads(pidfile(name).read_text())
    except (OSError, ValueError):
        return None


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def alive(name: str) -> bool:
    rec = recorded(name)
    if not rec:
        return False
    args = cmdline(rec["pid"])
    # A recycled PID runs another program: ours is recognised by its binary.
    return bool(args) and args[0] == rec["exe"] and not Path(f"/proc/{rec['pid']}/status").read_text().count("State:\tZ")


def kill_pid(pid: int, grace: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # Reap it if it is our child (up and down in one process, as in tests).
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop(name: str, grace: float = 10.0) -> None:
    if alive(name):
        log(f"stopping {name} (pid {recorded(name)['pid']})")
        kill_pid(recorded(name)["pid"], grace)
    pidfile(name).unlink(missing_ok=True)


# --- Preflight ----------------------------------------------------------------------------------------------------


def port_free(port: int) -> bool:
    for addr in ("127.0.0.1", "0.0.0.0"):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((addr, port))
            except OSError:
                return False
    return True


def host_networks() -> list[tuple[str, ipaddress.IPv4Network]]:
    """Every IPv4 network the host routes or has an address in, with where it comes from."""
    out = []
    for route in json.loads(run(["ip", "-j", "-4", "route", "show", "table", "all"]).stdout or "[]"):
        dst = route.get("dst")
        if dst and dst not in ("default",) and not dst.startswith(("127.", "broadcast", "local")):
            try:
                out.append((f"route {dst} dev {route.get('dev')}", ipaddress.ip_network(dst, strict=False)))
            except ValueError:
                pass
    for link in json.loads(run(["ip", "-j", "-4", "addr"]).stdout or "[]"):
        for a in link.get("addr_info", []):
            out.append((f"address {a['local']}/{a['prefixlen']} on {link['ifname']}",
                        ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)))
    return out


def existing_chains() -> list[str]:
    found = []
    for tool in ("iptables-save", "ip6tables-save"):
        if shutil.which(tool):
            for line in run([tool], check=False, quiet=True).stdout.splitlines():
                if line.startswith(":") and line[1:].startswith(CHAIN_PREFIXES):
                    found.append(f"{tool}: {line.split()[0][1:]}")
    return found


FREE_DISK_HINT = ("free some, e.g. `go clean -cache`, `uv cache prune`, or "
                  "`python3 k8s/cluster/cluster.py down --purge` (removes the nodes' cached images)")


def existing(path: Path) -> Path:
    """``path`` or its nearest existing parent: where its filesystem's free space can be read before it exists."""
    return next(p for p in (path, *path.parents) if p.exists())


def disk_problems(cfg: Config) -> list[str]:
    """The nodes' kubelets evict nothing for disk (as kind's do): a full disk would fail writes instead. So `up`
    refuses below ``storage.min_free_disk_gib`` on the filesystems that hold the nodes' state and image stores, room
    for the running cluster; `load` checks the room for the image layers the nodes have not unpacked yet."""
    need = float(cfg.storage["min_free_disk_gib"])
    problems, seen = [], set()
    for path in (STATE, CACHE):
        probe = existing(path)
        usage = shutil.disk_usage(probe)
        device = probe.stat().st_dev
        if device in seen:
            continue
        seen.add(device)
        free = usage.free / 2**30
        if free < need:
            problems.append(f"only {free:.1f} GiB free on the filesystem of {path}; the cluster needs "
                            f"{need:g} GiB (storage.min_free_disk_gib in k8s/cluster/cluster.toml): {FREE_DISK_HINT}")
    return problems


def preflight(cfg: Config) -> None:
    problems = []
    if platform.system() != "Linux":
        raise ClusterError(f"the local cluster runs on Linux only (this is {platform.system()}); use `make kind-up`")
    if os.geteuid() != 0:
        raise ClusterError("the local cluster needs root (it runs kubelets, containerd and changes iptables): "
                           "run `sudo make cluster-up`, or use `make kind-up` where Docker is available")
    for comp, names in {
        "kubernetes": ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy",
                       "kubectl", "pause"],
        "etcd": ["etcd"], "coredns": ["coredns"], "crane": ["crane"],
    }.items():
        for n in names:
            if not cfg.bin(comp, n).is_file():
                problems.append(f"{cfg.bin(comp, n)} is missing: run k8s/cluster/build.sh {comp} (make cluster-up does)")
    for tool, pkg in {"containerd": "containerd", "runc": "runc", "iptables": "iptables", "conntrack": "conntrack",
                      "openssl": "openssl", "ip": "iproute2", "ctr": "containerd"}.items():
        if not shutil.which(tool):
            problems.append(f"'{tool}' is missing: run k8s/cluster/host-packages.sh (Debian package {pkg})")
    for plugin in ("bridge", "host-local", "portmap", "loopback"):
        if not (CNI_BIN / plugin).exists():
            problems.append(f"CNI plugin {CNI_BIN / plugin} is missing: run k8s/cluster/host-packages.sh")
    if not Path("/proc/sys/net/bridge").exists():
        run(["modprobe", "br_netfilter"], check=False, quiet=True)
        if not Path("/proc/sys/net/bridge").exists():
            problems.append("the br_netfilter kernel module is not available (needed for Service traffic on bridges)")
    ports = cfg.ports
    for key in ("apiserver", "etcd_client", "etcd_peer", "registry", "kubelet", "kubelet_healthz",
                "kube_proxy_healthz", "kube_proxy_metrics", "controller_manager", "scheduler"):
        if not port_free(ports[key]):
            problems.append(f"port {ports[key]} ({key}) is already in use: stop what listens there "
                            f"(`ss -ltnp 'sport = :{ports[key]}'`) or change k8s/cluster/cluster.toml")
    ours = [ipaddress.ip_network(cfg.net[k]) for k in ("node_cidr", "pod_cidr", "service_cidr")]
    for where, net in host_networks():
        for mine in ours:
            if net.overlaps(mine):
                problems.append(f"CIDR {mine} of k8s/cluster/cluster.toml overlaps the host's {where}: "
                                "change the cluster's CIDRs or remove that network")
    problems += disk_problems(cfg)
    chains = existing_chains()
    if chains:
        problems.append("iptables already holds Kubernetes/CNI chains (" + ", ".join(chains[:4]) +
                        "): another cluster runs on this host; stop it (or run `make cluster-down` if it was ours)")
    if problems:
        raise ClusterError("cannot start the local cluster:\n  - " + "\n  - ".join(problems))


# --- PKI (openssl) -------------------------------------------------------------------------------------------------


def pki(cfg: Config) -> Path:
    d = STATE / "pki"
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)

    def key(name: str) -> Path:
        p = d / f"{name}.key"
        if not p.exists():
            run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", p])
        return p

    def cert(name: str, subject: str, *, sans: Sequence[str] = (), server: bool = False) -> Path:
        crt = d / f"{name}.crt"
        if crt.exists():
            return crt
        ext = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature,keyEncipherment",
            f"extendedKeyUsage={'serverAuth,clientAuth' if server else 'clientAuth'}",
        ]
        if sans:
            ext.append("subjectAltName=" + ",".join(sans))
        extfile = write(d / f"{name}.ext", "\n".join(ext) + "\n")
        csr = d / f"{name}.csr"
        run(["openssl", "req", "-new", "-key", key(name), "-subj", subject, "-out", csr])
        run(["openssl", "x509", "-req", "-in", csr, "-CA", d / "ca.crt", "-CAkey", d / "ca.key", "-CAcreateserial",
             "-days", "3650", "-sha256", "-extfile", extfile, "-out", crt])
        csr.unlink()
        return crt

    if not (d / "ca.crt").exists():
        run(["openssl", "req", "-x509", "-new", "-key", key("ca"), "-subj", f"/CN={cfg.name}-ca", "-days", "3650",
             "-sha256", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature", "-out", d / "ca.crt"])
    cp = cfg.control_plane
    cert("apiserver", "/CN=kube-apiserver", server=True, sans=[
        f"IP:{cfg.kubernetes_service_ip}", f"IP:{cp.ip}", "IP:127.0.0.1", "DNS:localhost", "DNS:kubernetes",
        "DNS:kubernetes.default", "DNS:kubernetes.default.svc", f"DNS:kubernetes.default.svc.{cfg.net['cluster_domain']}",
    ])
    cert("apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet-client")
    cert("admin", "/O=system:masters/CN=tributary-admin")
    cert("controller-manager", "/CN=system:kube-controller-manager")
    cert("scheduler", "/CN=system:kube-scheduler")
    cert("kube-proxy", "/CN=system:kube-proxy")
    for node in cfg.nodes:
        cert(f"kubelet-{node.name}", f"/O=system:nodes/CN=system:node:{node.name}")
    # Service-account token signing key pair.
    if not (d / "sa.pub").exists():
        run(["openssl", "pkey", "-in", key("sa"), "-pubout", "-out", d / "sa.pub"])
    for p in d.iterdir():
        p.chmod(0o600 if p.suffix == ".key" else 0o644)
    return d


def kubeconfig(cfg: Config, name: str, user: str, dest: Path) -> Path:
    d = STATE / "pki"
    return write(dest, json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": cfg.name, "preferences": {},
        "clusters": [{"name": cfg.name, "cluster": {"server": cfg.server, "certificate-authority": str(d / "ca.crt")}}],
        "users": [{"name": user, "user": {"client-certificate": str(d / f"{name}.crt"), "client-key": str(d / f"{name}.key")}}],
        "contexts": [{"name": cfg.name, "context": {"cluster": cfg.name, "user": user}}],
    }, indent=2), 0o600)


def admin_kubeconfig() -> Path:
    return STATE / "kubeconfig"


def kubectl(cfg: Config, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return run([cfg.bin("kubernetes", "kubectl"), "--kubeconfig", admin_kubeconfig(), *args], input=input, check=check,
               quiet=not check)


def https_ok(url: str) -> bool:
    ctx = ssl.create_default_context(cafile=str(STATE / "pki" / "ca.crt"))
    ctx.load_cert_chain(STATE / "pki" / "admin.crt", STATE / "pki" / "admin.key")
    with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
        return resp.status == 200


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status < 500


# --- Host network, sysctls and cgroups ---------------------------------------------------------------------------


def host_record() -> Path:
    return STATE / "host.json"


# Directories kubelets create on the host whatever their configuration (log links, the default pod log root).
KUBELET_HOST_DIRS = (Path("/var/log/containers"), Path("/var/log/pods"))


def set_up_host(cfg: Config) -> None:
    record = {"sysctls": {}}
    if host_record().exists():
        record = json.loads(host_record().read_text())
    record.setdefault("created_dirs", [str(d) for d in KUBELET_HOST_DIRS if not d.exists()])
    for key, value in SYSCTLS.items():
        p = Path("/proc/sys") / key
        record["sysctls"].setdefault(key, p.read_text().strip())
        p.write_text(value)
    write(host_record(), json.dumps(record, indent=2))
    iface = cfg.net["node_interface"]
    if run(["ip", "link", "show", iface], check=False, quiet=True).returncode != 0:
        run(["ip", "link", "add", iface, "type", "bridge"])  # a dummy link needs a kernel module not every host has
    prefix = ipaddress.ip_network(cfg.net["node_cidr"]).prefixlen
    have = run(["ip", "-4", "-o", "addr", "show", "dev", iface]).stdout
    for node in cfg.nodes:
        if f" {node.ip}/" not in have:
            run(["ip", "addr", "add", f"{node.ip}/{prefix}" if node.control_plane else f"{node.ip}/32", "dev", iface])
    run(["ip", "link", "set", iface, "up"])
    for node in cfg.nodes:
        for ctrl in cgroup_controllers():
            path = CGROUP_FS / ctrl / node.cgroup.lstrip("/")
            path.mkdir(parents=True, exist_ok=True)
            if ctrl == "cpuset":
                # A new cpuset cgroup starts empty; tasks cannot join it until it inherits its parent's CPUs and nodes.
                for f in ("cpuset.cpus", "cpuset.mems"):
                    for level in (path.parent, path):
                        if not (level / f).read_text().strip():
                            (level / f).write_text((level.parent / f).read_text().strip())


def cgroup_controllers() -> list[str]:
    """The cgroup v1 hierarchies mounted under /sys/fs/cgroup (kubelet runs with cgroupfs, failCgroupV1=false)."""
    if (CGROUP_FS / "cgroup.controllers").exists():
        return [""]  # cgroup v2: one unified hierarchy
    return sorted(p.name for p in CGROUP_FS.iterdir() if p.is_dir() and not p.is_symlink() and p.name != "unified")


# --- The control plane -------------------------------------------------------------------------------------------


def start_registry(cfg: Config) -> None:
    if alive("registry"):
        return
    store = CACHE / "registry"
    store.mkdir(parents=True, exist_ok=True)
    start("registry", [cfg.bin("crane", "crane"), "registry", "serve", "--address", f"127.0.0.1:{cfg.ports['registry']}",
                       "--disk", store])
    wait_for("the OCI registry", lambda: http_ok(f"http://127.0.0.1:{cfg.ports['registry']}/v2/"),
             cfg.timeouts["component"], procs=["registry"])


def push_cluster_images(cfg: Config) -> dict[str, str]:
    """The pause and CoreDNS images: one static binary each, appended to an empty image by crane."""
    crane = cfg.bin("crane", "crane")
    images = {
        "pause": (f"{cfg.registry}/tributary-local/pause:{cfg.versions['PAUSE_VERSION']}", cfg.bin("kubernetes", "pause"), ["/pause"]),
        "coredns": (f"{cfg.registry}/tributary-local/coredns:{cfg.versions['COREDNS_VERSION']}", cfg.bin("coredns", "coredns"), ["/coredns"]),
    }
    out = {}
    work = STATE / "images"
    work.mkdir(parents=True, exist_ok=True)
    for name, (ref, binary, entrypoint) in images.items():
        layer = work / f"{name}.tar"
        if not layer.exists():
            staging = work / name
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            shutil.copy2(binary, staging / binary.name)
            run(["tar", "--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "-C", staging,
                 "-cf", layer, binary.name])
            shutil.rmtree(staging)
        staged = ref + "-layer"
        run([crane, "append", "--insecure", "--oci-empty-base", "-f", layer, "-t", staged])
        run([crane, "mutate", "--insecure", staged, "--set-platform", "linux/amd64",
             "--entrypoint", ",".join(entrypoint), "-t", ref])
        out[name] = ref
    return out


def start_control_plane(cfg: Config) -> None:
    k, p, cp = STATE / "pki", cfg.ports, cfg.control_plane
    if not alive("etcd"):
        start("etcd", [
            cfg.bin("etcd", "etcd"), "--name", "default", "--data-dir", STATE / "etcd",
            "--listen-client-urls", f"http://127.0.0.1:{p['etcd_client']}",
            "--advertise-client-urls", f"http://127.0.0.1:{p['etcd_client']}",
            "--listen-peer-urls", f"http://127.0.0.1:{p['etcd_peer']}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{p['etcd_peer']}",
            "--initial-cluster", f"default=http://127.0.0.1:{p['etcd_peer']}",
            "--listen-metrics-urls", "", "--quota-backend-bytes", str(2 * 1024**3),
            "--experimental-watch-progress-notify-interval", "5s", "--log-level", "warn",
        ])
    wait_for("etcd", lambda: http_ok(f"http://127.0.0.1:{p['etcd_client']}/health"), cfg.timeouts["component"],
             procs=["etcd"])
    if not alive("kube-apiserver"):
        start("kube-apiserver", [
            cfg.bin("kubernetes", "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{p['etcd_client']}",
            f"--bind-address={cp.ip}", f"--advertise-address={cp.ip}", f"--secure-port={p['apiserver']}",
            f"--tls-cert-file={k / 'apiserver.crt'}", f"--tls-private-key-file={k / 'apiserver.key'}",
            f"--client-ca-file={k / 'ca.crt'}",
            f"--service-cluster-ip-range={cfg.net['service_cidr']}",
            "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true", "--profiling=false", "--event-ttl=1h",
            f"--service-account-issuer=https://kubernetes.default.svc.{cfg.net['cluster_domain']}",
            f"--service-account-key-file={k / 'sa.pub'}", f"--service-account-signing-key-file={k / 'sa.key'}",
            f"--kubelet-client-certificate={k / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={k / 'apiserver-kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP",
            "--endpoint-reconciler-type=lease",
        ])
    wait_for("kube-apiserver /readyz", lambda: https_ok(f"{cfg.server}/readyz"), cfg.timeouts["component"],
             procs=["kube-apiserver"])
    for name, bin_name, extra in (
        ("kube-controller-manager", "kube-controller-manager", [
            f"--root-ca-file={k / 'ca.crt'}", f"--service-account-private-key-file={k / 'sa.key'}",
            "--use-service-account-credentials=true", f"--cluster-signing-cert-file={k / 'ca.crt'}",
            f"--cluster-signing-key-file={k / 'ca.key'}", f"--service-cluster-ip-range={cfg.net['service_cidr']}",
            "--allocate-node-cidrs=false", f"--cluster-name={cfg.name}", f"--secure-port={p['controller_manager']}",
        ]),
        ("kube-scheduler", "kube-scheduler", [f"--secure-port={p['scheduler']}"]),
    ):
        conf = kubeconfig(cfg, name.removeprefix("kube-"), f"system:{name}", STATE / "kubeconfigs" / f"{name}.conf")
        if not alive(name):
            start(name, [cfg.bin("kubernetes", bin_name), f"--kubeconfig={conf}", f"--authentication-kubeconfig={conf}",
                         f"--authorization-kubeconfig={conf}", "--bind-address=127.0.0.1", "--leader-elect=false",
                         *extra])


# --- Nodes: containerd + kubelet ---------------------------------------------------------------------------------

CONTAINERD_CONFIG = Template("""\
version = 2
root = "$root"
state = "$state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "$socket"
[ttrpc]
  address = "$socket.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$root/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause"
  # This host's root lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below containerd's own (the pause
  # container asks for -998), so containerd clamps the requested value to its own.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_cdi = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    # The Spark image is gigabytes: keep it once per node (unpacked), not twice (content store + snapshot).
    discard_unpacked_layers = true
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$cni_bin"
    conf_dir = "$cni_conf"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$certs"
""")


def registry_hosts(cfg: Config, certs: Path) -> None:
    """containerd pulls from the local registry over plain HTTP; Docker Hub names of our own images (tributary/*,
    what `kind load` puts on kind nodes) are tried there first, with Docker Hub as the fallback."""
    local = f"http://127.0.0.1:{cfg.ports['registry']}"
    for host in (cfg.registry, f"127.0.0.1:{cfg.ports['registry']}"):
        write(certs / host / "hosts.toml", f'server = "{local}"\n\n[host."{local}"]\n  capabilities = ["pull", "resolve"]\n')
    write(certs / "docker.io" / "hosts.toml",
          f'server = "https://registry-1.docker.io"\n\n[host."{local}"]\n  capabilities = ["pull", "resolve"]\n')


def start_node(cfg: Config, node: Node, pause: str) -> None:
    node.run.mkdir(parents=True, exist_ok=True)
    node.home.mkdir(parents=True, exist_ok=True)
    certs = node.home / "certs.d"
    registry_hosts(cfg, certs)
    subnet = cfg.pod_subnet(node)
    write(node.home / "net.d" / "10-tributary.conflist", json.dumps({
        "cniVersion": "1.0.0", "name": f"tributary-{node.index}",
        "plugins": [
            {"type": "bridge", "bridge": node.bridge, "isGateway": True, "ipMasq": True, "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": str(subnet)}]], "routes": [{"dst": "0.0.0.0/0"}],
                      "dataDir": str(node.run / "ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }, indent=2))
    conf = write(node.home / "containerd.toml", CONTAINERD_CONFIG.substitute(
        root=node.images, state=node.run / "containerd", socket=node.socket, pause=pause,
        cni_bin=CNI_BIN, cni_conf=node.home / "net.d", certs=certs))
    name = f"containerd-{node.name}"
    if not alive(name):
        start(name, [shutil.which("containerd"), "--config", conf, "--log-level", "warn"])
    wait_for(f"containerd of {node.name}", node.socket.exists, cfg.timeouts["component"], procs=[name])

    kubelet_conf = kubeconfig(cfg, f"kubelet-{node.name}", f"system:node:{node.name}",
                              node.home / "kubelet.kubeconfig")
    taints = []
    for t in node.taints:
        kv, effect = t.rsplit(":", 1)
        key, _, value = kv.partition("=")
        taints.append({"key": key, "value": value, "effect": effect})
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": node.ip, "port": cfg.ports["kubelet"], "readOnlyPort": 0,
        "healthzBindAddress": node.ip, "healthzPort": cfg.ports["kubelet_healthz"],
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(STATE / "pki" / "ca.crt")}},
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": "cgroupfs", "cgroupRoot": node.cgroup, "failCgroupV1": False, "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{node.socket}",
        "clusterDNS": [cfg.net["dns_service_ip"]], "clusterDomain": cfg.net["cluster_domain"],
        "resolvConf": "/etc/resolv.conf", "registerWithTaints": taints, "serializeImagePulls": False,
        # The nodes share the host's disk, so disk pressure is the host's, not a node's: like kind, never evict or
        # garbage-collect images for it (a 2 % threshold of a large shared disk evicted running drivers and removed
        # the GPU node's Spark image). `up` refuses to start without storage.min_free_disk_gib free instead.
        "evictionHard": {"memory.available": "200Mi", "nodefs.available": "0%", "imagefs.available": "0%",
                         "nodefs.inodesFree": "0%"},
        "imageGCHighThresholdPercent": 100,
        "rotateCertificates": False, "serverTLSBootstrap": False, "maxPods": 110,
        "podPidsLimit": 4096, "shutdownGracePeriod": "0s",
        # Each kubelet removes the log directories of pods it does not run: one log root per node.
        "podLogsDir": str(node.home / "pod-logs"),
    }
    config_path = write(node.home / "kubelet.json", json.dumps(config, indent=2))
    name = f"kubelet-{node.name}"
    if not alive(name):
        start(name, [cfg.bin("kubernetes", "kubelet"), f"--config={config_path}", f"--kubeconfig={kubelet_conf}",
                     f"--hostname-override={node.name}", f"--node-ip={node.ip}",
                     f"--node-labels=tributary.dev/pool={node.pool}", f"--root-dir={node.home / 'kubelet'}",
                     f"--cert-dir={node.home / 'kubelet-pki'}"])


def start_kube_proxy(cfg: Config) -> None:
    cp = cfg.control_plane
    conf = kubeconfig(cfg, "kube-proxy", "system:kube-proxy", STATE / "kubeconfigs" / "kube-proxy.conf")
    config = write(STATE / "kube-proxy.json", json.dumps({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "mode": "iptables", "clusterCIDR": cfg.net["pod_cidr"], "hostnameOverride": cp.name,
        "bindAddress": cp.ip, "healthzBindAddress": f"{cp.ip}:{cfg.ports['kube_proxy_healthz']}",
        "metricsBindAddress": f"127.0.0.1:{cfg.ports['kube_proxy_metrics']}",
        "clientConnection": {"kubeconfig": str(conf)},
        # Leave the host's conntrack and route_localnet sysctls alone.
        "conntrack": {"maxPerCore": 0}, "iptables": {"localhostNodePorts": False},
    }, indent=2))
    if not alive("kube-proxy"):
        start("kube-proxy", [cfg.bin("kubernetes", "kube-proxy"), f"--config={config}"])


ADDONS = Template("""\
# CoreDNS (cluster DNS) and the default StorageClass of the local cluster, applied by k8s/cluster/cluster.py.
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
  - apiGroups: [""]
    resources: [endpoints, services, pods, namespaces]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:53 {
        errors
        health {
            lameduck 5s
        }
        ready
        kubernetes $domain in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 30
        }
        forward . /etc/resolv.conf
        cache 30
        loop
        reload
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      nodeSelector: {tributary.dev/pool: system}
      containers:
        - name: coredns
          image: $coredns
          args: [-conf, /etc/coredns/Corefile]
          ports:
            - {name: dns, containerPort: 53, protocol: UDP}
            - {name: dns-tcp, containerPort: 53, protocol: TCP}
          resources:
            requests: {cpu: 50m, memory: 64Mi}
            limits: {memory: 170Mi}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
          readinessProbe:
            httpGet: {path: /ready, port: 8181}
            periodSeconds: 2
          livenessProbe:
            httpGet: {path: /health, port: 8080}
            initialDelaySeconds: 10
          volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes:
        - name: config
          configMap: {name: coredns, items: [{key: Corefile, path: Corefile}]}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  selector: {k8s-app: kube-dns}
  clusterIP: $dns_ip
  ports:
    - {name: dns, port: 53, protocol: UDP}
    - {name: dns-tcp, port: 53, protocol: TCP}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
""")

PV = Template("""\
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: $name, labels: {tributary.dev/local-cluster: "true"}}
spec:
  capacity: {storage: $size}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: standard
  hostPath: {path: $path, type: Directory}
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [$node]}]
""")


def apply_addons(cfg: Config, coredns: str) -> None:
    manifest = ADDONS.substitute(domain=cfg.net["cluster_domain"], coredns=coredns, dns_ip=cfg.net["dns_service_ip"])
    system = next(n for n in cfg.nodes if n.pool == "system")
    for i in range(int(cfg.storage["volumes"])):
        path = STATE / "volumes" / f"pv-{i}"
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)  # hostPath volumes ignore fsGroup; the pods run as their own non-root users
        manifest += PV.substitute(name=f"tributary-local-pv-{i}", size=cfg.storage["volume_size"], path=path,
                                  node=system.name)
    kubectl(cfg, "apply", "--server-side", "--force-conflicts", "-f", "-", input=manifest)
    for node in cfg.nodes:
        if node.gpus:
            # Advertise the node's GPUs as an extended resource (what the NVIDIA device plugin does on a GPU node).
            kubectl(cfg, "patch", "node", node.name, "--subresource=status", "--type=json", "-p", json.dumps(
                [{"op": "add", "path": "/status/capacity/nvidia.com~1gpu", "value": str(node.gpus)}]))


def dns_answer(cfg: Config, name: str) -> str:
    """Ask the cluster DNS Service (through kube-proxy, as a pod would) for ``name``'s A record."""
    query = struct.pack(">HHHHHH", 0x7472, 0x0100, 1, 0, 0, 0)
    query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(query, (cfg.net["dns_service_ip"], 53))
        reply = s.recv(512)
    if reply[:2] != query[:2] or struct.unpack(">H", reply[6:8])[0] == 0:
        raise ClusterError(f"no answer for {name}")
    return socket.inet_ntoa(reply[-4:])


def nodes_ready(cfg: Config) -> bool:
    out = json.loads(kubectl(cfg, "get", "nodes", "-o", "json").stdout)
    ready = {n["metadata"]["name"] for n in out["items"]
             if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))}
    return ready >= {n.name for n in cfg.nodes}


def load(cfg: Config, images: Sequence[str], pools: Sequence[str], timeout: float = 1200) -> None:
    """Make the nodes of ``pools`` hold the registry's current ``images`` (what `kind load` does for kind): one pod
    per node and image, with pull policy Always, pulled by the kubelet as any pod's image, so a rebuilt image under
    the same tag replaces the node's copy. Pods then run their images with IfNotPresent, as on kind."""
    nodes = [n for n in cfg.nodes if n.pool in pools]
    if not nodes:
        raise ClusterError(f"no node in pools {list(pools)}; pools: {sorted({n.pool for n in cfg.nodes})}")
    # A rebuilt image under the same tag: each node drops its old copy first, so the pull needs room for one copy,
    # not two (the Spark image unpacks to about 8 GiB per node).
    current = {containerd_ref(image): registry_digest(cfg, image) for image in images}
    for node in nodes:
        if stale := outdated_refs(node_images(node), current):
            run([*node_ctr(node), "images", "remove", "--sync", *stale], quiet=True)
            log(f"{node.name}: removed {len(stale)} reference(s) of image(s) rebuilt since: {', '.join(stale)}")
    if short := load_disk_problem(cfg, nodes, images):
        raise ClusterError(short)
    ns = f"tributary-load-{os.urandom(3).hex()}"  # a fresh one: the last load's may still be terminating
    kubectl(cfg, "create", "namespace", ns)
    pods = []
    for node in nodes:
        for i, image in enumerate(images):
            name = f"load-{node.index}-{i}"
            pods.append(name)
            kubectl(cfg, "apply", "-f", "-", input=json.dumps({
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
                "spec": {"nodeName": node.name, "restartPolicy": "Never", "tolerations": [{"operator": "Exists"}],
                         "containers": [{"name": "load", "image": image, "imagePullPolicy": "Always",
                                         "command": ["true"], "resources": {"requests": {"cpu": "1m"}}}]},
            }))

    def done() -> bool:
        items = json.loads(kubectl(cfg, "get", "pods", "-n", ns, "-o", "json").stdout)["items"]
        for pod in items:
            for c in pod["status"].get("containerStatuses", []):
                waiting = c.get("state", {}).get("waiting", {})
                if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName"):
                    raise ClusterError(f"{pod['spec']['nodeName']} cannot pull {c['image']}: {waiting.get('message')}")
        return len(items) == len(pods) and all(p["status"].get("phase") in ("Succeeded", "Failed") for p in items)

    try:
        wait_for(f"{len(nodes)} node(s) to pull {', '.join(images)}", done, timeout, interval=3)
    finally:
        kubectl(cfg, "delete", "namespace", ns, "--wait=false", check=False)
    for node in nodes:
        if removed := prune_replaced(node):
            log(f"{node.name}: removed {len(removed)} replaced image(s): {', '.join(removed)}")


MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"


def containerd_ref(image: str) -> str:
    """The reference a node's containerd lists for ``image``: Docker Hub names get their registry
    (``tributary/spark:0.1.0`` -> ``docker.io/tributary/spark:0.1.0``); names with a registry host stay as they are."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"docker.io/{image}" if rest else f"docker.io/library/{image}"


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """The OCI chain IDs of an image's layers (the keys of its committed snapshots in containerd):
    ChainID(L0) = DiffID(L0), ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[str] = []
    for diff_id in diff_ids:
        out.append(diff_id if not out else "sha256:" + hashlib.sha256(f"{out[-1]} {diff_id}".encode()).hexdigest())
    return out


def registry_layers(cfg: Config, image: str) -> list[tuple[str, int]]:
    """``image``'s layers in the local registry, bottom first: (chain ID, compressed size in bytes)."""
    _, _, path = containerd_ref(image).partition("/")
    repo, _, tag = path.rpartition(":")
    base = f"http://127.0.0.1:{cfg.ports['registry']}/v2/{repo}"
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{base}/manifests/{tag}",
                                                           headers={"Accept": MANIFEST_TYPES}), timeout=10) as resp:
            manifest = json.load(resp)
        with urllib.request.urlopen(f"{base}/blobs/{manifest['config']['digest']}", timeout=10) as resp:
            diff_ids = json.load(resp)["rootfs"]["diff_ids"]
    except (OSError, KeyError, ValueError) as exc:
        raise ClusterError(f"{image} is not in the local registry ({exc}): push it first "
                           "(k8s/cluster/images.sh push, or `make images`)") from exc
    return list(zip(chain_ids(diff_ids), (layer["size"] for layer in manifest["layers"])))


def registry_digest(cfg: Config, image: str) -> str:
    """The manifest digest the local registry holds for ``image``'s tag."""
    _, _, path = containerd_ref(image).partition("/")
    repo, _, tag = path.rpartition(":")
    url = f"http://127.0.0.1:{cfg.ports['registry']}/v2/{repo}/manifests/{tag}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD", headers={"Accept": MANIFEST_TYPES}),
                                    timeout=10) as resp:
            return resp.headers["Docker-Content-Digest"]
    except (OSError, KeyError) as exc:
        raise ClusterError(f"{image} is not in the local registry ({exc}): push it first "
                           "(k8s/cluster/images.sh push, or `make images`)") from exc


def outdated_refs(listing: Sequence[tuple[str, str]], current: dict[str, str]) -> list[str]:
    """Of a node's image references, as (reference, manifest digest) pairs, every reference to a manifest that one of
    the tags in ``current`` (containerd reference -> the registry's digest) pointed to before a rebuild: the tag, its
    digest references and image-ID references. References to the registry's current manifests stay."""
    old = {digest for ref, digest in listing if ref in current and digest != current[ref]}
    return [ref for ref, digest in listing if digest in old]


def unpack_estimate(layers: Sequence[tuple[str, int]], held: set[str], ratio: float) -> int:
    """Bytes a node needs to unpack the layers it holds no snapshot of: their compressed size times ``ratio``."""
    return int(sum(size for chain, size in layers if chain not in held) * ratio)


def node_snapshots(node: Node) -> set[str]:
    """The keys of ``node``'s committed overlayfs snapshots: the chain IDs of the layers it has unpacked."""
    out = run([*node_ctr(node), "snapshots", "list"], quiet=True).stdout.splitlines()[1:]
    return {fields[0] for fields in (line.split() for line in out) if fields and fields[-1] == "Committed"}


def load_disk_problem(cfg: Config, nodes: Sequence[Node], images: Sequence[str]) -> str | None:
    """The nodes keep their images in the cache and never evict for disk: before pulling, check that the layers they
    have not unpacked yet (an unchanged Spark image needs nothing, a changed jobs layer only that layer) fit beside
    ``storage.min_free_disk_gib`` for the running cluster."""
    ratio = float(cfg.storage["unpacked_per_compressed"])
    layers = {image: registry_layers(cfg, image) for image in images}
    need = sum(unpack_estimate(layers[image], held, ratio)
               for held in (node_snapshots(node) for node in nodes) for image in images)
    free = shutil.disk_usage(existing(CACHE)).free
    floor = float(cfg.storage["min_free_disk_gib"]) * 2**30
    if free - need >= floor:
        return None
    return (f"the nodes would unpack about {need / 2**30:.1f} GiB of new image layers ({', '.join(images)}) with "
            f"{free / 2**30:.1f} GiB free on the filesystem of {CACHE}, leaving less than the "
            f"{floor / 2**30:g} GiB the cluster keeps free (storage.min_free_disk_gib in k8s/cluster/cluster.toml): "
            + FREE_DISK_HINT)


def repository(ref: str) -> str:
    """``localhost:5001/tributary-local/pause:3.10`` and ``…/pause@sha256:…`` -> ``localhost:5001/tributary-local/pause``."""
    if "@" in ref:
        return ref.split("@", 1)[0]
    head, _, last = ref.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def replaced_refs(listing: Sequence[tuple[str, str]]) -> list[str]:
    """Of a node's image references, as (reference, manifest digest) pairs, those of images that a newer one replaced
    under the same tag: a tagged repository's digest references (``repo@sha256:…``) that none of its tags points to
    any more, and the image-ID references (``sha256:…``) of the same manifests. Tags themselves are kept."""
    tagged: dict[str, set[str]] = {}
    for ref, digest in listing:
        if not ref.startswith("sha256:") and "@" not in ref:
            tagged.setdefault(repository(ref), set()).add(digest)
    stale = {digest for ref, digest in listing
             if "@" in ref and repository(ref) in tagged and digest not in tagged[repository(ref)]}
    return [ref for ref, digest in listing if digest in stale and ("@" in ref or ref.startswith("sha256:"))]


def node_ctr(node: Node) -> list[str]:
    """``ctr`` on ``node``'s containerd, in the namespace the kubelet's CRI uses."""
    return ["ctr", "--address", str(node.socket), "--namespace", "k8s.io"]


def node_images(node: Node) -> list[tuple[str, str]]:
    """``node``'s image references with the manifest digest each points to, as `ctr images list` shows them."""
    lines = run([*node_ctr(node), "images", "list"], quiet=True).stdout.splitlines()[1:]
    return [(fields[0], fields[2]) for fields in (line.split() for line in lines) if len(fields) > 2]


def prune_replaced(node: Node) -> list[str]:
    """Delete from ``node``'s containerd the images that a re-pulled tag replaced (as kind's nodes keep them too, until
    the kubelet's image GC reaches its disk threshold): each rebuilt Spark image would otherwise keep 4 GiB per
    node. An image a running container uses keeps its snapshot until that container goes."""
    refs = replaced_refs(node_images(node))
    if refs:
        run([*node_ctr(node), "images", "remove", "--sync", *refs], quiet=True)
    return refs


# --- up / down / status --------------------------------------------------------------------------------------------


def components(cfg: Config) -> list[str]:
    nodes = [f"{kind}-{n.name}" for n in cfg.nodes for kind in ("containerd", "kubelet")]
    return ["registry", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", *nodes, "kube-proxy"]


def up(cfg: Config) -> dict:
    t0 = time.monotonic()
    timings: dict[str, float] = {}

    def mark(step: str) -> None:
        timings[step] = round(time.monotonic() - t0, 1)
        log(f"{step}: {timings[step]}s")

    if all(alive(c) for c in components(cfg)) and admin_kubeconfig().exists():
        log("already running")
    else:
        if not any(alive(c) for c in components(cfg)):
            preflight(cfg)
        STATE.mkdir(parents=True, exist_ok=True)
        set_up_host(cfg)
        pki(cfg)
        kubeconfig(cfg, "admin", "tributary-admin", admin_kubeconfig())
        # kubectl and crane of the pinned builds, for `PATH=var/cluster/bin:$PATH` (make, docs, tests).
        (STATE / "bin").mkdir(exist_ok=True)
        for comp, tool in (("kubernetes", "kubectl"), ("crane", "crane")):
            link = STATE / "bin" / tool
            link.unlink(missing_ok=True)
            link.symlink_to(cfg.bin(comp, tool))
        mark("host and certificates")
        start_registry(cfg)
        images = push_cluster_images(cfg)
        mark("registry and cluster images")
        start_control_plane(cfg)
        mark("control plane")
        for node in cfg.nodes:
            start_node(cfg, node, images["pause"])
        start_kube_proxy(cfg)
        wait_for("every node Ready", lambda: nodes_ready(cfg), cfg.timeouts["nodes_ready"], interval=2,
                 procs=components(cfg))
        mark("nodes Ready")
        apply_addons(cfg, images["coredns"])
        wait_for("CoreDNS", lambda: kubectl(cfg, "-n", "kube-system", "rollout", "status", "deployment/coredns",
                                           "--timeout=5s", check=False).returncode == 0,
                 cfg.timeouts["addons_ready"], interval=2, procs=components(cfg))
        kubernetes = f"kubernetes.default.svc.{cfg.net['cluster_domain']}"
        wait_for("cluster DNS to answer through its Service",
                 lambda: dns_answer(cfg, kubernetes) == cfg.kubernetes_service_ip,
                 cfg.timeouts["addons_ready"], interval=1, procs=components(cfg))
        mark("CoreDNS ready")
    summary = {"kubeconfig": str(admin_kubeconfig()), "server": cfg.server, "registry": cfg.registry,
               "nodes": [{"name": n.name, "pool": n.pool, "ip": n.ip} for n in cfg.nodes], "timings_s": timings}
    write(STATE / "up.json", json.dumps(summary, indent=2))
    return summary


def mounts_under(prefixes: Sequence[Path]) -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4].replace("\\040", " ")
        if any(mount_point == str(p) or mount_point.startswith(str(p) + "/") for p in prefixes):
            out.append(mount_point)
    return out


def cgroup_pids() -> set[int]:
    pids = set()
    for ctrl in cgroup_controllers():
        base = CGROUP_FS / ctrl / CGROUP_PARENT
        if base.exists():
            for procs in base.rglob("cgroup.procs"):
                try:
                    pids.update(int(p) for p in procs.read_text().split())
                except OSError:
                    pass
    return pids


def shim_pids() -> set[int]:
    """containerd shims of our containerds (they outlive containerd by design)."""
    out = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            args = cmdline(int(proc.name))
            if args and "containerd-shim" in args[0] and any(str(RUN) in a for a in args):
                out.add(int(proc.name))
    return out


def clean_iptables() -> None:
    """Remove every chain named KUBE-*/CNI-* and every rule that jumps to one, table by table, atomically."""
    for save, restore in (("iptables-save", "iptables-restore"), ("ip6tables-save", "ip6tables-restore")):
        if not shutil.which(save):
            continue
        dump = run([save], check=False, quiet=True).stdout
        tables: dict[str, list[str]] = {}
        current = None
        for line in dump.splitlines():
            if line.startswith("*"):
                current = line[1:]
                tables[current] = []
            elif current and not line.startswith("#"):
                tables[current].append(line)
        for table, lines in tables.items():
            ours = [l for l in lines if (l.startswith(":") and l[1:].startswith(CHAIN_PREFIXES))
                    or (l.startswith("-A") and any(f" {p}" in l or l.startswith(f"-A {p}") for p in CHAIN_PREFIXES))]
            if not ours:
                continue
            kept = [l for l in lines if l not in ours]
            run([restore, "-w"], input=f"*{table}\n" + "\n".join(kept) + "\n", check=False)


def forget_containers(node: Node) -> None:
    """Delete every container and pod sandbox from a node's containerd (its images stay): the next cluster starts
    from clean runtime state."""
    ctr = node_ctr(node)
    ids = run([*ctr, "containers", "list", "--quiet"], check=False, quiet=True).stdout.split()
    for cid in ids:
        run([*ctr, "tasks", "delete", "--force", cid], check=False, quiet=True)
        run([*ctr, "containers", "delete", cid], check=False, quiet=True)


def down(cfg: Config, purge: bool = False) -> None:
    kubelet_bin = str(cfg.bin("kubernetes", "kubelet"))
    # Kubelets first, so nothing restarts the containers we stop next.
    for node in cfg.nodes:
        stop(f"kubelet-{node.name}")
    # Every container of our nodes lives under our cgroup parent: kill them, then the shims.
    for _ in range(3):
        pids = cgroup_pids() | shim_pids()
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(1)
    for node in cfg.nodes:
        if alive(f"containerd-{node.name}"):
            forget_containers(node)
        stop(f"containerd-{node.name}")
    for name in ("kube-proxy", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd", "registry"):
        stop(name)
    # Sweep leftovers of an earlier, failed run: any kubelet of ours still running.
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and cmdline(int(proc.name))[:1] == [kubelet_bin]:
            kill_pid(int(proc.name))
    for mount_point in sorted(mounts_under([STATE, RUN, CACHE / "cluster" / "nodes"]), key=len, reverse=True):
        run(["umount", "-l", mount_point], check=False, quiet=True)
    if (kp := cfg.bin("kubernetes", "kube-proxy")).exists():
        run([kp, "--cleanup"], check=False, quiet=True)
    clean_iptables()
    links = json.loads(run(["ip", "-j", "link"], check=False, quiet=True).stdout or "[]")
    ours = {n.bridge for n in cfg.nodes} | {cfg.net["node_interface"]}
    for link in links:
        if link.get("master") in ours:  # a veth left attached to one of our bridges
            run(["ip", "link", "del", link["ifname"]], check=False, quiet=True)
    for link in links:
        if link["ifname"] in ours:
            run(["ip", "link", "del", link["ifname"]], check=False, quiet=True)
    for directory in KUBELET_HOST_DIRS:
        if directory.is_dir():
            for link in directory.iterdir():
                if link.is_symlink() and os.readlink(link).startswith(str(STATE)):
                    link.unlink()
    if host_record().exists():
        for directory in json.loads(host_record().read_text()).get("created_dirs", []):
            try:
                Path(directory).rmdir()
            except OSError as exc:
                log(f"kept {directory}: {exc}")
    if host_record().exists():
        for key, value in json.loads(host_record().read_text()).get("sysctls", {}).items():
            try:
                (Path("/proc/sys") / key).write_text(value)
            except OSError as exc:
                log(f"could not restore {key}={value}: {exc}")
    for ctrl in cgroup_controllers():
        base = CGROUP_FS / ctrl / CGROUP_PARENT
        if base.exists():
            for d in sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                try:
                    d.rmdir()
                except OSError:
                    pass
            try:
                base.rmdir()
            except OSError as exc:
                log(f"could not remove cgroup {base}: {exc}")
    shutil.rmtree(RUN, ignore_errors=True)
    if purge:
        for node in cfg.nodes:
            log(f"purging the cached images of {node.name}")
            run(["rm", "-rf", str(node.images)], check=False, quiet=True)
    # Keep the logs of the last run for debugging; everything else of the cluster's state goes.
    if STATE.exists():
        for child in STATE.iterdir():
            if child.name != "logs":
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
    log("down: stopped and cleaned up")


def status(cfg: Config) -> int:
    states = {c: alive(c) for c in components(cfg)}
    for c, ok in states.items():
        print(f"{c:40s} {'running (pid %d)' % recorded(c)['pid'] if ok else 'stopped'}")
    if all(states.values()):
        print(kubectl(cfg, "get", "nodes", "-o", "wide", check=False).stdout)
        return 0
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status", "kubeconfig", "load"])
    parser.add_argument("images", nargs="*", help="load: the images (as pods name them) the nodes must hold")
    parser.add_argument("--pool", action="append", default=[], help="load: the node pools to load (repeatable)")
    parser.add_argument("--purge", action="store_true", help="down: also delete the nodes' cached images")
    args = parser.parse_intermixed_args(argv)
    cfg = load_config()
    if args.command == "kubeconfig":
        print(admin_kubeconfig())
        return 0
    if args.command == "status":
        return status(cfg)
    if args.command == "load":
        try:
            load(cfg, args.images, args.pool or sorted({n.pool for n in cfg.nodes}))
        except ClusterError as exc:
            log(f"error: {exc}")
            return 1
        log(f"load: {len(args.images)} image(s) on pools {args.pool or 'all'}")
        return 0
    if os.geteuid() != 0:
        log(f"error: `{args.command}` needs root: run it with sudo (it manages kubelets, containerd and iptables)")
        return 2
    RUN.parent.mkdir(parents=True, exist_ok=True)
    with open("/run/tributary-cluster.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("error: another `cluster.py up/down` is running on this host")
            return 2
        try:
            if args.command == "up":
                summary = up(cfg)
                log(f"up: {len(cfg.nodes)} nodes Ready; export KUBECONFIG={summary['kubeconfig']}")
                print(json.dumps(summary, indent=2))
            else:
                down(cfg, purge=args.purge)
        except ClusterError as exc:
            log(f"error: {exc}")
            if args.command == "up":
                log("run `make cluster-down` to remove what was started")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
