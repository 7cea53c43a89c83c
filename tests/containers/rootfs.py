#!/usr/bin/python3
"""Builds the image the Dockerfile describes without a Docker engine, then runs it.

No Docker engine runs on the project's machines, but Debian's packages are reachable,
and the Dockerfile only uses debian:bookworm-slim. So each stage is built as a Debian 12
root file system (mmdebstrap --variant=apt, the nearest thing to bookworm-slim), and the
Dockerfile's own instructions are carried out in it: RUN through chroot (so its apt-get,
groupadd, useradd and cmake lines really run), COPY from the build context (filtered by
.dockerignore) or from an earlier stage, WORKDIR, ENV and USER. Then, in a network
namespace of its own (so the fixed ports do not meet anything else on the machine), with
/proc mounted as a container runtime does, the final stage's ENTRYPOINT + CMD runs as
its USER with its ENV in its WORKDIR, the HEALTHCHECK command must succeed, the CRM API
must serve its 1000 customers from another container's point of view (0.0.0.0), and
SIGTERM must stop it with status 0.

Needs root, mmdebstrap and unshare. Takes a minute or two (Debian packages download).
    tests/containers/rootfs.py            (KEEP_ROOTFS=1 keeps .cache/containers/rootfs/)
Ends with "N passed, N failed"; exits 1 on a failure.
"""
import json
import os
import shlex
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check  # noqa: E402  (the Dockerfile parser and .dockerignore rules)

ROOT = os.getcwd()
WORK = os.path.join(ROOT, ".cache", "containers", "rootfs")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
results = []


def step(name, ok, detail=""):
    results.append(ok)
    print(("ok   " if ok else "FAIL ") + name)
    if not ok and detail:
        print("\n".join("     " + line for line in detail.strip().splitlines()[-40:]))
    sys.stdout.flush()
    return ok


def sh(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def copy_context(src, dest, excluded):
    """COPY src dest from the build context, leaving out what .dockerignore excludes."""
    if os.path.isfile(src):
        if os.path.isdir(dest) or dest.endswith("/"):
            os.makedirs(dest, exist_ok=True)
            dest = os.path.join(dest, os.path.basename(src))
        shutil.copy2(src, dest)
        return
    for dirpath, dirnames, filenames in os.walk(src):
        rel_dir = os.path.relpath(dirpath, ".")
        dirnames[:] = [d for d in dirnames if not excluded(os.path.normpath(os.path.join(rel_dir, d)))]
        target = os.path.join(dest, os.path.relpath(dirpath, src))
        os.makedirs(target, exist_ok=True)
        for name in filenames:
            rel = os.path.normpath(os.path.join(rel_dir, name))
            if not excluded(rel):
                shutil.copy2(os.path.join(dirpath, name), os.path.join(target, name),
                             follow_symlinks=False)


class Stage:
    def __init__(self, name, rootfs):
        self.name, self.rootfs = name, rootfs
        self.env, self.workdir, self.user = {"PATH": PATH}, "/", "0:0"
        self.meta = {}

    def inside(self, path):
        return os.path.join(self.rootfs, os.path.join(self.workdir, path).lstrip("/"))

    def run(self, command):
        env_args = ["env", "-i"] + [f"{k}={v}" for k, v in self.env.items()]
        script = f"cd {shlex.quote(self.workdir)} && {command}"
        return sh(["chroot", f"--userspec={self.user}", self.rootfs] + env_args +
                  ["/bin/sh", "-c", script])


def build():
    stages = check.dockerfile_stages()
    excluded = check.dockerignore_matcher()
    built = {}
    for index, (name, instructions) in enumerate(stages):
        label = name or f"stage {index}"
        rootfs = os.path.join(WORK, label)
        base = instructions[0][1].split()[0]
        if base != "debian:bookworm-slim":
            step(f"{label}: FROM {base}", False, "only debian:bookworm-slim can be built here")
            return None
        r = sh(["mmdebstrap", "--mode=root", "--variant=apt", "--quiet", "bookworm", rootfs])
        if not step(f"{label}: FROM {base} (mmdebstrap bookworm --variant=apt)",
                    r.returncode == 0, r.stderr):
            return None
        stage = Stage(label, rootfs)
        for word, rest in instructions[1:]:
            if word == "RUN":
                r = stage.run(rest)
                if not step(f"{label}: RUN {rest[:90]}", r.returncode == 0,
                            r.stdout + r.stderr):
                    return None
            elif word == "WORKDIR":
                stage.workdir = os.path.join(stage.workdir, rest)
                os.makedirs(stage.inside("."), exist_ok=True)
            elif word == "ENV":
                for tok in shlex.split(rest):
                    k, _, v = tok.partition("=")
                    stage.env[k] = v
            elif word == "USER":
                user = rest.strip()
                if ":" not in user:
                    user += ":" + user
                stage.user = user
            elif word == "COPY":
                toks = rest.split()
                opts = [t for t in toks if t.startswith("--")]
                args = [t for t in toks if not t.startswith("--")]
                srcs, dest = args[:-1], args[-1]
                dest_path = stage.inside(dest)
                src_stage = next((o.split("=", 1)[1] for o in opts if o.startswith("--from=")),
                                 None)
                for src in srcs:
                    if src_stage:
                        s = os.path.join(built[src_stage].rootfs, src.lstrip("/"))
                        if os.path.isdir(s):  # a folder's contents, as Docker copies it
                            shutil.copytree(s, dest_path, symlinks=True, dirs_exist_ok=True)
                            continue
                        os.makedirs(os.path.dirname(dest_path), exist_ok=True)
                        shutil.copy2(s, dest_path)
                    else:
                        copy_context(src, dest_path, excluded)
                step(f"{label}: COPY {rest}", True)
            elif word in ("EXPOSE", "HEALTHCHECK", "ENTRYPOINT", "CMD"):
                stage.meta[word] = rest
            else:
                step(f"{label}: {word} is not supported by this builder", False)
                return None
        built[label] = stage
    return stage


def smoke(stage):
    entry = json.loads(stage.meta["ENTRYPOINT"])
    cmd = json.loads(stage.meta["CMD"])
    health = stage.meta["HEALTHCHECK"]
    health_cmd = json.loads(health[health.index("CMD") + 3:].strip())
    # The admin listens on 0.0.0.0 in the image, so junction wants a token, as `docker run
    # -e JUNCTION_ADMIN_TOKEN=...` and compose.yaml give it.
    run_env = dict(stage.env, JUNCTION_ADMIN_TOKEN="rootfs-smoke-token")
    env = " ".join(shlex.quote(f"{k}={v}") for k, v in run_env.items())
    chroot = f"chroot --userspec={stage.user} {shlex.quote(stage.rootfs)} env -i {env}"
    # A container runtime mounts /proc; junction reads /proc/self/exe to find the scripts
    # installed beside it (<prefix>/share/junction), as other programs read /proc.
    inner = f"""
set -u
ip link set lo up
mount -t proc proc {shlex.quote(os.path.join(stage.rootfs, "proc"))}
{chroot} /bin/sh -c {shlex.quote(f"cd {stage.workdir} && exec " + shlex.join(entry + cmd))} \
  >{shlex.quote(os.path.join(WORK, "run.log"))} 2>&1 &
pid=$!
healthy=0
for i in $(seq 1 100); do
  if {chroot} {shlex.join(health_cmd)} >/dev/null 2>&1; then healthy=1; break; fi
  kill -0 $pid 2>/dev/null || break
  sleep 0.1
done
echo "healthy=$healthy"
# 127.0.0.2 reaches only a server bound to every address (0.0.0.0), not 127.0.0.1.
n=$({chroot} curl -fsS http://127.0.0.2:8081/customers | grep -o '"id":' | wc -l)
echo "customers=$n"
echo "user=$(stat -c %u /proc/$pid 2>/dev/null)"
kill -TERM $pid 2>/dev/null
wait $pid
echo "exit=$?"
"""
    r = sh(["unshare", "--net", "--mount", "/bin/bash", "-c", inner])
    out = dict(line.split("=", 1) for line in r.stdout.split() if "=" in line)
    log = open(os.path.join(WORK, "run.log")).read() if os.path.exists(
        os.path.join(WORK, "run.log")) else ""
    detail = r.stdout + r.stderr + log
    what = shlex.join(entry + cmd)
    step(f"run: `{what}` passes the HEALTHCHECK ({shlex.join(health_cmd)})",
         out.get("healthy") == "1", detail)
    step(f"run: `{what}` serves the 1000 customers on 0.0.0.0:8081",
         out.get("customers") == "1000", detail)
    step(f"run: `{what}` runs as USER {stage.user}",
         out.get("user") == stage.user.split(":")[0], detail)
    step(f"run: `{what}` exits 0 on SIGTERM", out.get("exit") == "0", detail)


def main():
    if os.geteuid() != 0 or not shutil.which("mmdebstrap") or not shutil.which("unshare"):
        print("rootfs: needs root, mmdebstrap (tools/setup) and unshare")
        sys.exit(1)
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    try:
        final = build()
        if final is not None:
            smoke(final)
    finally:
        if not os.environ.get("KEEP_ROOTFS"):
            shutil.rmtree(WORK, ignore_errors=True)
    failed = results.count(False)
    print(f"rootfs: {len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
