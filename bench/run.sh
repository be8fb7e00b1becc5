#!/usr/bin/env bash
# Side-by-side timings in one run on one machine (hyperfine, Debian's package):
#   (a) the seed's cfssl + sed + tar flow
#   (b) kube-bundle build of examples/seed-ha.yaml from empty secrets, rsa-2048 as written and
#       with ecdsa-p256: the apiserver tier (what the seed flow makes) and the whole master
#   (c) kube-bundle rebuild, secrets and bundles present (unchanged tarballs are reused)
#   (d) 30 and 300 masters, rebuilt the same way
#   (e) 3 masters shipping a 120 MB stand-in binary vs `tar czf` of the same content x3:
#       built with secrets present but no bundles (so the binary is compressed), and
#       rebuilt unchanged
# (GNU tar skips reading when the archive is /dev/null, so (e) writes real files.)
# Then: peak RSS (GNU time); the share of CPU samples in aws-lc's jitter-entropy start-up
# in a fresh ECDSA build (perf); and the floor of an RSA build, keys x one key's
# generation time (cargo bench) / cores. Prints medians and every target's ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in hyperfine cfssl cfssljson /usr/bin/time perf nm openssl; do
  command -v "$tool" >/dev/null || {
    echo "bench: needs $tool (apt-get install hyperfine golang-cfssl time linux-perf binutils openssl)" >&2
    exit 2
  }
done
echo "load before: $(uptime)"
cargo build --release --quiet
kb=$PWD/target/release/kube-bundle
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

masters() { # masters N: a cluster.yaml with N masters
  local n=$1 i
  printf 'apiVersion: kube-bundle/v1alpha1\nkind: Cluster\nname: bench\nkubernetesVersion: v1.36.1\nmasters:\n'
  for ((i = 0; i < n; i++)); do printf '  - { name: m%d, ip: 10.%d.%d.%d }\n' "$i" $((i / 62500 + 20)) $((i / 250 % 250)) $((i % 250 + 1)); done
  printf 'network: { serviceCIDR: 10.96.0.0/12 }\netcd: { endpoints: ["https://10.20.0.1:2379"] }\n'
  printf 'apiserver: { extraArgs: {} }\n'
}
mkdir -p "$work/seed" "$work/ecdsa" "$work/whole-rsa" "$work/whole-ecdsa" "$work/m3" "$work/m30" "$work/m300" "$work/bin"
cp examples/seed-ha.yaml "$work/whole-rsa/cluster.yaml"
sed 's/keyAlgorithm: rsa-2048/keyAlgorithm: ecdsa-p256/' examples/seed-ha.yaml >"$work/whole-ecdsa/cluster.yaml"
grep -q 'keyAlgorithm: ecdsa-p256' "$work/whole-ecdsa/cluster.yaml"
# The apiserver tier alone: what the seed flow makes.
for variant in rsa ecdsa; do
  grep -v -E '^(controllerManager|scheduler): \{\}$' "$work/whole-$variant/cluster.yaml" >"$work/$variant.yaml"
  if grep -q -E '^(controllerManager|scheduler):' "$work/$variant.yaml"; then
    echo "bench: could not turn the controller manager and the scheduler off" >&2
    exit 1
  fi
done
mv "$work/rsa.yaml" "$work/seed/cluster.yaml"
mv "$work/ecdsa.yaml" "$work/ecdsa/cluster.yaml"
for n in 3 30 300; do masters "$n" >"$work/m$n/cluster.yaml"; done
for n in 3 30 300; do (cd "$work/m$n" && "$kb" build >/dev/null 2>&1); done

# (e): 120 MB, half compressible (text-like), half not (random).
head -c 62914560 /dev/urandom >"$work/bin/random"
head -c 62914560 < <(yes 'kube-apiserver stand-in: compressible text segment 0123456789') >"$work/bin/text"
cat "$work/bin/text" "$work/bin/random" >"$work/bin/kube-apiserver"
rm "$work/bin/text" "$work/bin/random"
chmod 755 "$work/bin/kube-apiserver"
masters 3 | sed 's|apiserver: { extraArgs: {} }|apiserver: { extraArgs: {} }\nbinaries: { kubeApiserver: kube-apiserver }|' >"$work/bin/cluster.yaml"
(cd "$work/bin" && "$kb" build >/dev/null 2>&1)

json=$work/results.json
rsa_json=$work/rsa.json
# RSA builds vary with the prime search (one key takes 20 to 200 ms): more runs.
hyperfine --style basic --warmup 1 --runs 15 --export-json "$rsa_json" \
  -n build-rsa-empty-secrets "cd $work/seed && rm -rf secrets bundles && $kb build >/dev/null 2>&1" \
  -n build-whole-master-rsa-empty-secrets "cd $work/whole-rsa && rm -rf secrets bundles && $kb build >/dev/null 2>&1" >/dev/null
hyperfine --style basic --warmup 1 --runs 5 --export-json "$json" \
  -n seed-flow "bash bench/seed-flow.sh $work/seedflow" \
  -n build-ecdsa-empty-secrets "cd $work/ecdsa && rm -rf secrets bundles && $kb build >/dev/null 2>&1" \
  -n build-whole-master-ecdsa-empty-secrets "cd $work/whole-ecdsa && rm -rf secrets bundles && $kb build >/dev/null 2>&1" \
  -n build-3 "cd $work/m3 && $kb build >/dev/null 2>&1" \
  -n build-30 "cd $work/m30 && $kb build >/dev/null 2>&1" \
  -n build-300 "cd $work/m300 && $kb build >/dev/null 2>&1" \
  -n build-3-binary "cd $work/bin && rm -rf bundles && $kb build >/dev/null 2>&1" \
  -n rebuild-3-binary-unchanged "cd $work/bin && $kb build >/dev/null 2>&1" \
  -n tar-czf-x3 "cd $work/bin && for n in 1 2 3; do tar czf t\$n.tar.gz kube-apiserver; done" >/dev/null

rss() { /usr/bin/time -f %M sh -c "$1" 2>&1 >/dev/null | tail -1; }
rss_binary=$(rss "cd $work/bin && rm -rf bundles && $kb build >/dev/null 2>&1")
rss_300=$(rss "cd $work/m300 && $kb build >/dev/null 2>&1")

# perf's own symbol reader may fail on the binary (perf 6.1 here reads none), so samples
# are mapped to symbols with nm. Jitter entropy: aws-lc's jent_* functions, the SHA-3
# and xoshiro generator only they use.
(cd "$work/ecdsa" && rm -rf secrets bundles &&
  perf record -q -F 4999 -o "$work/perf.data" -- "$kb" build >/dev/null 2>&1)
perf report -i "$work/perf.data" --no-children --stdio --sort dso,sym -g none 2>/dev/null >"$work/perf.txt"
nm -n "$kb" >"$work/symbols.txt"

# The floor of an RSA build: how many RSA keys the fresh build made, and one key's time.
count_rsa_keys() { # count_rsa_keys DIR: the rsa-2048 keys under DIR
  local pem count=0
  while IFS= read -r -d '' pem; do
    if openssl pkey -in "$pem" -noout -text 2>/dev/null | head -1 | grep -q '2048 bit'; then
      count=$((count + 1))
    fi
  done < <(find "$1" -name '*.pem' -print0)
  echo "$count"
}
rsa_keys=$(count_rsa_keys "$work/seed/secrets")
whole_rsa_keys=$(count_rsa_keys "$work/whole-rsa/secrets")
# Bundle sizes: one master's tarball, the apiserver tier against the whole master.
tier_bytes=$(stat -c %s "$work/ecdsa/bundles/seed-ha/m7-autocv-gpu01.tar.gz")
whole_bytes=$(stat -c %s "$work/whole-ecdsa/bundles/seed-ha/m7-autocv-gpu01.tar.gz")
rsa_key_ms=$(cargo bench --quiet --bench micro -- 'key generation: rsa-2048' 2>/dev/null |
  awk '/key generation: rsa-2048/ { print $(NF - 1) }')
echo "load after:  $(uptime)"

python3 - "$json,$rsa_json" "$rss_binary" "$rss_300" "$work/perf.txt" "$work/symbols.txt" \
  "$rsa_keys" "$rsa_key_ms" "$(nproc)" "$whole_rsa_keys" "$tier_bytes" "$whole_bytes" <<'PY'
import bisect, json, re, sys
results = {}
for path in sys.argv[1].split(","):
    results.update({r["command"]: r["median"] for r in json.load(open(path))["results"]})
ms = lambda name: results[name] * 1000
rss_binary, rss_300 = int(sys.argv[2]) // 1024, int(sys.argv[3]) // 1024
rsa_keys, rsa_key_ms, cores = int(sys.argv[6]), float(sys.argv[7]), int(sys.argv[8])
whole_rsa_keys, tier_bytes, whole_bytes = int(sys.argv[9]), int(sys.argv[10]), int(sys.argv[11])

symbols = []
for line in open(sys.argv[5]):
    parts = line.split()
    if len(parts) == 3 and parts[1] in "tTwW":
        symbols.append((int(parts[0], 16), parts[2]))
starts = [address for address, _ in symbols]
def name(symbol):
    if not symbol.startswith("0x"):
        return symbol
    i = bisect.bisect_right(starts, int(symbol, 16)) - 1
    return symbols[i][1] if i >= 0 else symbol
total = entropy = 0.0
for line in open(sys.argv[4]):
    m = re.match(r"\s*([\d.]+)%\s+\S+\s+\[.\]\s+(\S+)", line)
    if m:
        total += float(m[1])
        if re.search(r"jent_|jitter|xoshiro|SHA3|[Kk]eccak", name(m[2])):
            entropy += float(m[1])
entropy_share = entropy / total * 100 if total else float("nan")

print("| measurement | median |")
print("|---|---|")
for name_ in results:
    print(f"| {name_} | {ms(name_):.1f} ms |")
print()
bound = rsa_keys * rsa_key_ms / cores
whole_bound = whole_rsa_keys * rsa_key_ms / cores
print(f"RSA floor: {rsa_keys} rsa-2048 keys x {rsa_key_ms:.1f} ms (one key, mean of 60) / {cores} cores = {bound:.0f} ms")
print(f"RSA floor, whole master: {whole_rsa_keys} keys x {rsa_key_ms:.1f} ms / {cores} cores = {whole_bound:.0f} ms")
print(f"one master's bundle (ecdsa): apiserver tier {tier_bytes} bytes, whole master {whole_bytes} bytes")
print()
print("| target | measured | goal | met |")
print("|---|---|---|---|")
rows = [
    ("ECDSA build, empty secrets / seed flow", ms("build-ecdsa-empty-secrets") / ms("seed-flow"), 0.06, "x"),
    ("RSA build, empty secrets / (keys x one key / cores)", ms("build-rsa-empty-secrets") / bound, 1.1, "x"),
    ("whole master: ECDSA build, empty secrets / seed flow", ms("build-whole-master-ecdsa-empty-secrets") / ms("seed-flow"), 0.06, "x"),
    ("whole master: RSA build / (keys x one key / cores)", ms("build-whole-master-rsa-empty-secrets") / whole_bound, 1.1, "x"),
    ("rebuild, secrets present, 3 masters", ms("build-3"), 8, "ms"),
    ("rebuild, secrets present, 300 masters", ms("build-300"), 500, "ms"),
    ("3 masters + 120 MB binary / 3x tar czf", ms("build-3-binary") / ms("tar-czf-x3"), 0.2, "x"),
    ("peak RSS, build with the 120 MB binary", rss_binary, 64, "MB"),
    ("3 masters + 120 MB binary, rebuilt unchanged / 3x tar czf", ms("rebuild-3-binary-unchanged") / ms("tar-czf-x3"), 0.2, "x"),
    ("jitter-entropy share of a fresh ECDSA build (perf)", entropy_share, 0, "%"),
]
for label, value, goal, unit in rows:
    shown = f"{value:.2f}" if unit == "x" else f"{value:.1f} {unit}"
    print(f"| {label} | {shown} | <= {goal} {unit if unit != 'x' else ''}".rstrip() + f" | {'yes' if value <= goal else 'NO'} |")
print()
print(f"peak RSS, 300 masters: {rss_300} MB")
PY
