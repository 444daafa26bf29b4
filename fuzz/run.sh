#!/usr/bin/env bash
# Runs the cargo-fuzz targets, one after the other, each for SECONDS (default 300).
#
#   fuzz/run.sh [SECONDS] [TARGET...]     targets: line envelope spf dmarc config
#
# Toolchain: the machine's stable Rust with RUSTC_BOOTSTRAP=1, which lets cargo fuzz
# pass its nightly-only flags (-Zsanitizer=address, sanitizer coverage); a nightly
# toolchain works too (FUZZ_TOOLCHAIN=nightly). Installs cargo-fuzz from crates.io
# when it is missing.
#
# Each target's working corpus is fuzz/work/TARGET (not committed), seeded from the
# test fixtures and the lab zones; crashes land in fuzz/artifacts/TARGET. Inputs
# that found bugs are kept in fuzz/corpus/TARGET and replayed by
# tests/fuzz_regressions.rs in CI. The summary (executions, exec/s, coverage,
# crashes) is printed at the end and written to fuzz/work/summary.txt.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(line envelope spf dmarc config)

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
fuzz() {
  if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then cargo "+$FUZZ_TOOLCHAIN" fuzz "$@"; else RUSTC_BOOTSTRAP=1 cargo fuzz "$@"; fi
}

python3 - <<'PY'
# Seeds: one file per input, from the fixtures the unit tests already use.
import glob, hashlib, os, re
root = ".."
def put(target, data):
    d = os.path.join("work", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)
logs = glob.glob(f"{root}/tests/fixtures/samples/*.log") + glob.glob(f"{root}/tests/fixtures/maillog/**/*.log", recursive=True)
lines = []
for p in logs:
    with open(p, "rb") as f:
        lines += f.read().splitlines()
seen = set()
for l in lines:
    key = l[:60]
    if key in seen:
        continue
    seen.add(key)
    put("line", l)
    put("envelope", l)
# a few runs of consecutive lines (Exim continuations and duplicates span lines)
for i in range(0, len(lines), 97):
    put("line", b"\n".join(lines[i:i + 6]))
for p in glob.glob(f"{root}/tests/fixtures/config/*/*.toml"):
    put("config", open(p, "rb").read())
texts = []
for p in glob.glob(f"{root}/lab/dns/zones/*.zone") + glob.glob(f"{root}/src/dns/**/*.rs", recursive=True) + glob.glob(f"{root}/tests/*.rs"):
    texts += re.findall(r'"((?:[^"\\]|\\.)*)"', open(p, errors="replace").read())
for t in texts:
    low = t.lower()
    if low.startswith("v=spf1"):
        put("spf", t.replace('\\"', '"'))
    if "v=dmarc1" in low or "v=dkim1" in low or "v=stsv1" in low or "v=tlsrptv1" in low or low.startswith("p="):
        put("dmarc", t.replace('\\"', '"'))
# a walk seed: includes, a redirect and a loop
put("spf", "v=spf1 a mx include:a.example redirect=b.example\na.example v=spf1 include:b.example ip4:192.0.2.0/24 -all\nb.example v=spf1 include:a.example ~all\nc.example VOID")
PY

summary=work/summary.txt
: > "$summary"
for t in "${targets[@]}"; do
  echo "==> fuzzing $t for ${secs}s" >&2
  mkdir -p "artifacts/$t"
  dict=()
  [ -f "dict/$t.dict" ] && dict=("-dict=dict/$t.dict")
  log="work/$t.log"
  set +e
  fuzz run -O "$t" "work/$t" -- -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="artifacts/$t/" "${dict[@]}" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
  crashes=$(find "artifacts/$t" -type f | wc -l)
  printf '%-9s exit=%s executions=%s exec/s=%s cov=%s features=%s corpus=%s crashes=%s\n' \
    "$t" "$rc" "$execs" "$rate" "$cov" "$ft" "$(find "work/$t" -type f | wc -l)" "$crashes" | tee -a "$summary"
done
