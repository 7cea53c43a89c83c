#!/usr/bin/python3
"""Checks of Dockerfile, .dockerignore and compose.yaml against junction itself, for
tests/containers/validate.sh (which runs the real linters). No Docker engine is needed.

    check.py dockerfile    packages, user, entrypoint, health check, exposed ports
    check.py dockerignore  what the build needs is sent, build trees and caches are not
    check.py compose       junction services: commands, variables, listeners, references,
                           health checks behind depends_on, a scalable consumer
    check.py configs       every examples/*.lua and every junction service's environment
                           is accepted by the binary
    check.py boot          `junction api` and `junction analytics` start with the
                           containers' config (listeners moved to free loopback ports)

Run from the repository root with Debian's python3 (python3-yaml); JUNCTION_BIN names
the binary (default build/junction). Prints what is wrong and exits 1, or exits 0.
"""
import fnmatch
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from junction_test import free_ports  # noqa: E402

ROOT = os.getcwd()
BIN = os.environ.get("JUNCTION_BIN", os.path.join(ROOT, "build", "junction"))
# Read by main.c itself (getenv), so not in --help-config's table.
EXTRA_VARIABLES = {"JUNCTION_CONFIG"}
# The image's admin port: its config (examples/containers.lua) sets it for every role, so
# one HEALTHCHECK fits them all.
ADMIN_PORT = 8000
# Where a command's admin listens when neither its config nor JUNCTION_ADMIN_LISTEN says
# (config.c, jn_config_admin_port): each role alone has a port of its own.
COMMAND_ADMIN_PORTS = {"run": 8000, "api": 8001, "produce": 8002, "consume": 8003,
                       "analytics": 8004}

problems = []


def problem(msg):
    problems.append(msg)


def finish():
    for p in problems:
        print(p)
    sys.exit(1 if problems else 0)


# ---------------------------------------------------------------- junction itself


def junction_subcommands():
    """The commands `junction --help` lists under "commands:"."""
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True, check=True).stdout
    cmds, inside = [], False
    for line in out.splitlines():
        if line.strip() == "commands:":
            inside = True
        elif inside and not line.strip():
            break
        elif inside:
            m = re.match(r"^  (\S+)\s{2,}", line)
            if m:
                cmds.append(m.group(1))
    if not cmds:
        raise SystemExit("could not read the commands from `junction --help`:\n" + out)
    return cmds


def junction_variables():
    """Environment variables junction reads: --help-config's column, JUNCTION_CONFIG,
    the names the shipped scripts pass to junction.env() and the shipped configs to
    env()."""
    out = subprocess.run([BIN, "--help-config"], capture_output=True, text=True,
                         check=True).stdout
    names = set()
    for line in out.splitlines()[1:]:
        # KEY DEFAULT ENVIRONMENT MEANING: the default may be empty or overflow its
        # column, but it is never an upper-case identifier, and the variable is.
        for tok in line.split()[1:]:
            if re.fullmatch(r"[A-Z][A-Z0-9_]*", tok):
                names.add(tok)
                break
            if tok == "-":
                break
    if len(names) < 10:
        raise SystemExit("could not read the variables from `junction --help-config`")
    for path in glob.glob("scripts/**/*.lua", recursive=True) + \
            glob.glob("examples/**/*.lua", recursive=True):
        with open(path, encoding="utf-8") as f:
            names.update(re.findall(r'junction\.env\(\s*"([A-Z][A-Z0-9_]*)"', f.read()))
    # The shipped configs read the variables of their APIs, sources and pipelines with
    # env(name, default): examples/containers.lua is the image's.
    for path in glob.glob("examples/*.lua"):
        with open(path, encoding="utf-8") as f:
            names.update(re.findall(r'(?<![.\w])env\(\s*"([A-Z][A-Z0-9_]*)"', f.read()))
    return names | EXTRA_VARIABLES


def config_accepted(env_overrides, config_path):
    """Whether junction loads config_path with env_overrides without an error. The
    binary has no check-only mode, so this runs `junction analytics` with an invalid
    --log-level: main() loads the file and the environment first and only then rejects
    the level, exiting before it binds anything. Returns None or the error."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("JUNCTION_") or k in ("KAFKA_BOOTSTRAP_SERVERS",
                                                       "REDIS_HOST", "REDIS_PORT",
                                                       "ANALYTICS_URL"))}
    env.update(env_overrides)
    env["JUNCTION_CONFIG"] = config_path
    r = subprocess.run([BIN, "analytics", "--log-level", "not-a-level"], env=env,
                       capture_output=True, text=True, timeout=30)
    if r.returncode == 2 and "--log-level must be" in r.stderr:
        return None
    return (r.stderr or r.stdout).strip() or f"exit status {r.returncode}"


def canary():
    """config_accepted only means something while a bad config is refused first."""
    bad = os.path.join(ROOT, ".cache", "containers", "canary.lua")
    os.makedirs(os.path.dirname(bad), exist_ok=True)
    with open(bad, "w", encoding="utf-8") as f:
        f.write("return { admin = { lisen = '127.0.0.1:8000' } }\n")
    err = config_accepted({}, bad)
    if not err or "unknown key admin.lisen" not in err:
        raise SystemExit("junction no longer loads the configuration before it checks "
                         "--log-level, so config_accepted() in tests/containers/check.py "
                         f"cannot tell a good config from a bad one (got: {err!r})")


# ---------------------------------------------------------------- Dockerfile


def dockerfile_stages(path="Dockerfile"):
    """[(stage name or None, [(INSTRUCTION, arguments), ...]), ...]"""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    logical, cur = [], ""
    for line in lines:
        if re.match(r"^\s*#", line):
            continue  # comments, also inside continued instructions, as Docker does
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        cur += line
        if cur.strip():
            logical.append(cur.strip())
        cur = ""
    stages = []
    for inst in logical:
        word, _, rest = inst.partition(" ")
        word = word.upper()
        if word == "FROM":
            m = re.search(r"\s+AS\s+(\S+)\s*$", rest, re.I)
            stages.append((m.group(1) if m else None, [(word, rest.strip())]))
        elif stages:
            stages[-1][1].append((word, rest.strip()))
    return stages


def repo_file_in_image(path):
    """The repository file that the absolute path path is in the image, or None. The
    build stage installs with `cmake --install build --prefix P`, which puts scripts/ and
    examples/ under P/share/junction/, and the runtime stage copies that folder from it;
    files COPYed from the build context land under WORKDIR."""
    stages = dockerfile_stages()
    final = stages[-1][1]
    for w, r in stages[0][1]:
        m = re.search(r"cmake --install \S+ --prefix (\S+)", r) if w == "RUN" else None
        if not m:
            continue
        share = m.group(1).rstrip("/") + "/share/junction"
        for w, r in final:
            args = [t.rstrip("/") for t in r.split() if not t.startswith("--")]
            if w == "COPY" and "--from=" in r and len(args) == 2 and args[0] == share:
                rel = os.path.relpath(path, args[1])
                if not rel.startswith("..") and os.path.isfile(rel):
                    return rel
    workdir = next((r for w, r in reversed(final) if w == "WORKDIR"), "")
    copied = [t.rstrip("/") for w, r in final if w == "COPY" and "--from=" not in r
              for t in r.split()[:-1] if not t.startswith("--")]
    rel = os.path.relpath(path, workdir) if workdir else path
    if not rel.startswith("..") and os.path.isfile(rel) and rel.split("/")[0] in copied:
        return rel
    return None


def apt_packages(instructions):
    pkgs = []
    for word, rest in instructions:
        if word != "RUN":
            continue
        for cmd in re.split(r"&&|;|\|\|", rest):
            toks = shlex.split(cmd)
            if len(toks) > 2 and toks[0] == "apt-get" and "install" in toks:
                pkgs += [t for t in toks[toks.index("install") + 1:] if not t.startswith("-")]
    return pkgs


def exec_form(arg):
    try:
        v = json.loads(arg)
        return v if isinstance(v, list) else None
    except ValueError:
        return None


def setup_packages():
    with open("tools/setup", encoding="utf-8") as f:
        m = re.search(r"^pkgs=\((.*?)^\)", f.read(), re.S | re.M)
    body = re.sub(r"#.*", "", m.group(1)) if m else ""
    return set(body.split())


def debian_package_exists(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True,
                       text=True)
    if "install ok installed" in r.stdout:
        return True
    r = subprocess.run(["apt-cache", "show", pkg], capture_output=True, text=True)
    return r.returncode == 0 and "Package:" in r.stdout


def needed_libraries():
    out = subprocess.run(["readelf", "-d", BIN], capture_output=True, text=True,
                         check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def owning_package(lib):
    r = subprocess.run(["dpkg", "-S", "*/" + lib], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        pkgs, _, path = line.partition(": ")
        if os.path.basename(path) == lib:
            return pkgs.split(",")[0].strip().split(":")[0]
    return None


def check_dockerfile():
    stages = dockerfile_stages()
    if len(stages) < 2:
        problem("Dockerfile: expected a build stage and a runtime stage")
        return
    subcommands = junction_subcommands()
    for name, inst in stages:
        base = inst[0][1].split()[0]
        if base != "debian:bookworm-slim":
            problem(f"Dockerfile: stage {name or '(final)'} is FROM {base}, not "
                    "debian:bookworm-slim (the packages below are Debian 12's)")
    build_pkgs = apt_packages(stages[0][1])
    final = stages[-1][1]
    run_pkgs = apt_packages(final)

    # The build installs what the project builds with here (tools/setup).
    known = setup_packages()
    for p in build_pkgs:
        if p not in known:
            problem(f"Dockerfile: build stage installs {p}, which tools/setup does not")
    # Every package named exists in Debian 12 (this machine's release).
    if not open("/etc/debian_version").read().startswith("12"):
        print("note: not Debian 12 here; package names checked against this release")
    for p in build_pkgs + run_pkgs:
        if not debian_package_exists(p):
            problem(f"Dockerfile: no Debian package named {p}")
    # The runtime stage brings every library the binary links against.
    for lib in needed_libraries():
        pkg = owning_package(lib)
        if pkg is None:
            problem(f"Dockerfile: no Debian package here owns {lib} (needed by {BIN})")
        elif pkg not in run_pkgs and pkg not in ("libc6", "libgcc-s1"):
            problem(f"Dockerfile: {BIN} needs {lib} from {pkg}, which the runtime stage "
                    f"does not install ({' '.join(run_pkgs)})")
    for p in ("ca-certificates", "curl"):
        if p not in run_pkgs:
            problem(f"Dockerfile: the runtime stage does not install {p}")

    def last(word):
        vals = [rest for w, rest in final if w == word]
        return vals[-1] if vals else None

    user = last("USER")
    if user is None or not re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", user):
        problem(f"Dockerfile: the image must run as a numeric non-root user, USER is {user}")
    workdir = last("WORKDIR")
    if not workdir:
        problem("Dockerfile: no WORKDIR in the runtime stage")
    entry = exec_form(last("ENTRYPOINT") or "")
    if entry != ["junction"]:
        problem(f'Dockerfile: ENTRYPOINT should be ["junction"], is {last("ENTRYPOINT")}')
    bin_dest = next((m.group(1) for w, r in final if w == "COPY" and "--from=" in r
                     for m in [re.search(r"/junction\s+(/usr/(?:local/)?bin/)(junction)?$", r)]
                     if m), None)
    if bin_dest is None:
        problem("Dockerfile: the runtime stage does not copy the built junction into PATH")
    else:
        # The binary looks for its stock scripts in <bindir>/../share/junction/scripts.
        share = os.path.normpath(os.path.join(bin_dest, "..", "share", "junction"))
        for f in ("scripts/crm.lua", "scripts/join.lua", "scripts/merge.lua",
                  "examples/containers.lua"):
            if repo_file_in_image(f"{share}/{f}") != f:
                problem(f"Dockerfile: the image has no {share}/{f} beside {bin_dest}junction "
                        "(cmake --install's layout, where junction finds its scripts)")
    cmd = exec_form(last("CMD") or "")
    if not cmd or cmd[0] not in subcommands + ["--help", "--help-config"]:
        problem(f"Dockerfile: CMD {last('CMD')} is not a junction command {subcommands}")
    exposed = set(" ".join(r for w, r in final if w == "EXPOSE").split())
    for port in ("8000", "8081", "8082", "8083"):
        if port not in exposed and port + "/tcp" not in exposed:
            problem(f"Dockerfile: port {port} is not EXPOSEd")
    health = last("HEALTHCHECK") or ""
    if f"http://127.0.0.1:{ADMIN_PORT}/healthz" not in health:
        problem(f"Dockerfile: HEALTHCHECK does not ask the admin's /healthz: {health}")
    for w, r in final:
        if w == "COPY" and "--from=" not in r:
            srcs = [s for s in r.split()[:-1] if not s.startswith("--")]
            for s in srcs:
                if not os.path.exists(s):
                    problem(f"Dockerfile: COPY {s}: no such file in the repository")
    for w, r in final:
        if w == "ENV":
            m = re.search(r"JUNCTION_CONFIG=(\S+)", r)
            if m:
                rel = repo_file_in_image(m.group(1))
                if rel is None:
                    problem(f"Dockerfile: JUNCTION_CONFIG={m.group(1)} is no repository "
                            "file the image gets (installed under <prefix>/share/junction "
                            "or copied under WORKDIR)")
                else:
                    port = admin_port_of(rel)
                    if port is None:
                        problem(f"Dockerfile: {rel} leaves the admin port to each command "
                                f"({COMMAND_ADMIN_PORTS}), the HEALTHCHECK asks "
                                f":{ADMIN_PORT} for every one")
                    elif port != ADMIN_PORT:
                        problem(f"Dockerfile: {rel} puts the admin on :{port}, the "
                                f"HEALTHCHECK asks :{ADMIN_PORT}")


def admin_port_of(config, command=None):
    """The admin port config sets; absent, command's own (None without a command)."""
    with open(config, encoding="utf-8") as f:
        m = re.search(r"admin\s*=\s*{\s*listen\s*=\s*\"[^\"]*:(\d+)\"", f.read())
    return int(m.group(1)) if m else COMMAND_ADMIN_PORTS.get(command)


# ---------------------------------------------------------------- .dockerignore


def dockerignore_matcher():
    """excluded(path) for a path relative to the context, by .dockerignore's patterns
    (anchored at the root; **/ at any depth; ! re-includes; the last match wins)."""
    with open(".dockerignore", encoding="utf-8") as f:
        pats = [p.strip() for p in f if p.strip() and not p.lstrip().startswith("#")]

    def excluded(path):
        out = False
        for p in pats:
            neg = p.startswith("!")
            pat = (p[1:] if neg else p).rstrip("/").lstrip("/")
            parts = path.split("/")
            hit = any(fnmatch.fnmatchcase("/".join(parts[:i + 1]), pat) or
                      (pat.startswith("**/") and
                       fnmatch.fnmatchcase("/".join(parts[j:i + 1]), pat[3:]))
                      for i in range(len(parts)) for j in range(i + 1))
            if hit:
                out = not neg
        return out

    return excluded


def check_dockerignore():
    excluded = dockerignore_matcher()
    for path in ("build", "build-asan", ".cache", ".services", ".git", "node_modules",
                 "bench/fastify/node_modules"):
        if not excluded(path):
            problem(f".dockerignore: {path} would be sent to the build")
    for path in ("CMakeLists.txt", "src/main.c", "scripts/crm.lua", "examples/containers.lua",
                 "Dockerfile"):
        if excluded(path):
            problem(f".dockerignore: {path} is needed but excluded")


# ---------------------------------------------------------------- compose.yaml


def compose_config():
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    out = subprocess.run(["docker-compose", "--project-directory", ROOT, "-f", "compose.yaml",
                          "--profile", "testing", "config"], capture_output=True, text=True,
                         env=env, check=True).stdout
    return yaml.safe_load(out)


def is_junction(svc):
    return "build" in svc or str(svc.get("image", "")).startswith("junction")


def listen_ports(svc):
    env = svc.get("environment") or {}
    return {int(v.rsplit(":", 1)[1]) for k, v in env.items() if k.endswith("_LISTEN")}


def check_compose():
    cfg = compose_config()
    services = cfg["services"]
    subcommands = junction_subcommands()
    variables = junction_variables()

    names = {}  # host name -> service
    for name, svc in services.items():
        names[name] = name
        for net in (svc.get("networks") or {}).values():
            for alias in (net or {}).get("aliases") or []:
                names[alias] = name

    junction_services = [n for n, s in services.items() if is_junction(s)]
    for role in ("api", "produce", "consume", "analytics"):
        if not any((services[n].get("command") or [None])[-1] == role
                   for n in junction_services):
            problem(f"compose: no service runs `junction {role}`")
    for name in junction_services:
        svc = services[name]
        cmd = list(svc.get("command") or [])
        if cmd[:1] == ["junction"]:
            cmd = cmd[1:]
        if len(cmd) != 1 or cmd[0] not in subcommands:
            problem(f"compose: {name}: command {svc.get('command')} is not one of "
                    f"`junction {'|'.join(subcommands)}`")
        env = svc.get("environment") or {}
        for var in env:
            if var not in variables:
                problem(f"compose: {name}: junction does not read {var} "
                        "(see `junction --help-config`)")
        conf = env.get("JUNCTION_CONFIG")
        conf_file = repo_file_in_image(conf) if conf else None
        if conf and conf_file is None:
            problem(f"compose: {name}: JUNCTION_CONFIG={conf} is not in the image "
                    "(no repository file installed or copied there)")
        for var, val in env.items():
            if var.endswith("_LISTEN") and not str(val).startswith("0.0.0.0:"):
                problem(f"compose: {name}: {var}={val} is not reachable from other "
                        "containers (listen on 0.0.0.0)")
        # The health check (this one or the image's) asks the admin where it listens:
        # /healthz, or /readyz for a role that says when it can do its work.
        admin = env.get("JUNCTION_ADMIN_LISTEN")
        admin = int(str(admin).rsplit(":", 1)[1]) if admin else \
            admin_port_of(conf_file, cmd[0] if cmd else None) if conf_file else ADMIN_PORT
        test = " ".join(map(str, (svc.get("healthcheck") or {}).get("test", [])))
        asked = test or f"127.0.0.1:{ADMIN_PORT}/healthz"
        if f"127.0.0.1:{admin}/healthz" not in asked and f"127.0.0.1:{admin}/readyz" not in asked:
            problem(f"compose: {name}: the admin listens on :{admin}, the health check "
                    f"asks {test or 'the image default, :%d' % ADMIN_PORT}")

    # Every address a service is given names a service (or alias) that listens there.
    def target(owner, host, port, what):
        svc_name = names.get(host)
        if svc_name is None:
            problem(f"compose: {owner}: {what} names {host}, which is no service or alias")
            return
        t = services[svc_name]
        if is_junction(t):
            if port is not None and port not in listen_ports(t):
                problem(f"compose: {owner}: {what} is {host}:{port}, but {svc_name} "
                        f"listens on {sorted(listen_ports(t))}")
        elif str(t.get("image", "")).startswith("apache/kafka"):
            adv = (t.get("environment") or {}).get("KAFKA_ADVERTISED_LISTENERS", "")
            if f"//{host}:{port}" not in adv:
                problem(f"compose: {owner}: {what} {host}:{port} is not an advertised "
                        f"Kafka listener ({adv})")
        elif str(t.get("image", "")).startswith("redis") and port not in (None, 6379):
            problem(f"compose: {owner}: {what} uses port {port}; Redis listens on 6379")

    for name, svc in services.items():
        env = svc.get("environment") or {}
        for var, val in env.items():
            val = str(val)
            for m in re.finditer(r"https?://([A-Za-z0-9_.-]+)(?::(\d+))?", val):
                target(name, m.group(1), int(m.group(2) or 80), var)
            if var == "KAFKA_BOOTSTRAP_SERVERS":
                for hp in val.split(","):
                    host, _, port = hp.strip().rpartition(":")
                    target(name, host, int(port), var)
            if var == "REDIS_HOST":
                target(name, val, int(env.get("REDIS_PORT", 6379)), var)

    # depends_on conditions can be met.
    image_health = any(w == "HEALTHCHECK" for w, _ in dockerfile_stages()[-1][1])
    for name, svc in services.items():
        for dep, spec in (svc.get("depends_on") or {}).items():
            cond = (spec or {}).get("condition", "service_started")
            d = services.get(dep)
            if d is None:
                problem(f"compose: {name} depends on {dep}, which is not a service")
            elif cond == "service_healthy" and "healthcheck" not in d and \
                    not (is_junction(d) and image_health):
                problem(f"compose: {name} waits for {dep} to be healthy; it has no health check")
            elif cond == "service_completed_successfully" and \
                    d.get("restart") in ("always", "unless-stopped"):
                problem(f"compose: {name} waits for {dep} to complete; it restarts forever")
            if d is not None and d.get("profiles") and not svc.get("profiles"):
                problem(f"compose: {name} depends on {dep}, which only runs in a profile")

    # The consumer can be scaled: no fixed name, no fixed host port.
    consumer = [n for n in junction_services
                if (services[n].get("command") or [None])[-1] == "consume"]
    for name in consumer:
        svc = services[name]
        if "container_name" in svc:
            problem(f"compose: {name}: container_name stops `--scale {name}=3`")
        for p in svc.get("ports") or []:
            if (p.get("published") if isinstance(p, dict) else ":" in str(p)):
                problem(f"compose: {name}: a fixed host port stops `--scale {name}=3`: {p}")
    host_ports = {}
    for name, svc in services.items():
        for p in svc.get("ports") or []:
            pub = p.get("published") if isinstance(p, dict) else None
            if pub:
                key = (p.get("host_ip", ""), str(pub))
                if key in host_ports:
                    problem(f"compose: {name} and {host_ports[key]} both publish {pub}")
                host_ports[key] = name


# ---------------------------------------------------------------- configs


def check_configs():
    canary()
    # The secrets examples ask for (examples/orders.lua's tokens) are given, as a deployment
    # would; a config that cannot find one is refused, which test_config checks.
    secrets = {"ANALYTICS_TOKEN": "example-token", "ORDERS_API_TOKEN": "example-token"}
    for path in sorted(glob.glob("examples/*.lua")):
        err = config_accepted(secrets, path)
        if err:
            problem(f"{path}: junction refuses it: {err}")
    cfg = compose_config()
    for name, svc in cfg["services"].items():
        if not is_junction(svc):
            continue
        env = {k: str(v) for k, v in (svc.get("environment") or {}).items()}
        conf = env.pop("JUNCTION_CONFIG", None)
        if conf is None:  # the image's default
            conf = next((m.group(1) for w, r in dockerfile_stages()[-1][1] if w == "ENV"
                         for m in [re.search(r"JUNCTION_CONFIG=(\S+)", r)] if m), None)
        path = repo_file_in_image(conf) if conf else None
        err = config_accepted(env, path) if path else \
            f"no config file {conf}"
        if err:
            problem(f"compose: {name}: junction refuses its environment: {err}")


# ---------------------------------------------------------------- boot


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read()


def boot(role, config, listens, probe):
    """Starts `junction role` with config, moving each *_LISTEN in listens to a free
    loopback port; waits for /healthz, asks probe (path on the first listener), then
    stops it with SIGTERM and expects exit status 0."""
    ports = free_ports(len(listens) + 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUNCTION_")}
    env["JUNCTION_CONFIG"] = config
    env["JUNCTION_ADMIN_LISTEN"] = f"127.0.0.1:{ports[0]}"
    for var, port in zip(listens, ports[1:]):
        env[var] = f"127.0.0.1:{port}"
    log_path = os.path.join(ROOT, ".cache", "containers", f"boot-{role}.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([BIN, role], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                problem(f"boot: junction {role} with {config} exited {proc.returncode}: "
                        + open(log_path).read()[-800:])
                return
            try:
                if get(f"http://127.0.0.1:{ports[0]}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                problem(f"boot: junction {role} with {config}: /healthz never answered")
                return
            time.sleep(0.1)
        status, body = get(f"http://127.0.0.1:{ports[1]}{probe[0]}")
        if status != 200 or not probe[1](body):
            problem(f"boot: junction {role}: GET {probe[0]} answered {status} {body[:200]!r}")
        if f"config: {config}" not in open(log_path).read():
            problem(f"boot: junction {role} did not say it runs {config}")
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                if proc.wait(timeout=10) != 0:
                    problem(f"boot: junction {role} exited {proc.returncode} on SIGTERM")
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                problem(f"boot: junction {role} did not stop within 10 s of SIGTERM")


def check_boot():
    os.makedirs(os.path.join(ROOT, ".cache", "containers"), exist_ok=True)
    config = "examples/containers.lua"
    boot("api", config, ["JUNCTION_CRM_LISTEN", "JUNCTION_INVENTORY_LISTEN"],
         ("/customers", lambda b: len(json.loads(b)) == 1000))
    boot("analytics", config, ["JUNCTION_ANALYTICS_LISTEN"],
         ("/analytics/stats", lambda b: isinstance(json.loads(b), dict)))


CHECKS = {
    "dockerfile": check_dockerfile,
    "dockerignore": check_dockerignore,
    "compose": check_compose,
    "configs": check_configs,
    "boot": check_boot,
}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CHECKS:
        raise SystemExit(f"usage: {sys.argv[0]} {'|'.join(CHECKS)}")
    CHECKS[sys.argv[1]]()
    finish()
