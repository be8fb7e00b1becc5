#!/usr/bin/env bash
# Side-by-side timings in one run on one machine (hyperfine, Debian's package):
#   (a) the seed's cfssl + sed + tar flow        (b) kube-bundle build, empty secrets
#   (c) kube-bundle build, secrets present        (d) 30 and 300 masters, secrets present
#   (e) 3 masters shipping a 120 MB stand-in binary vs `tar czf` of the same content x3
# (GNU tar skips reading when the archive is /dev/null, so (e) writes real files.)
# Prints medians, the ratios the issue sets targets for, and peak RSS (GNU time).
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in hyperfine cfssl cfssljson /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: needs $tool (apt-get install hyperfine golang-cfssl time)" >&2; exit 2; }
done
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
mkdir -p "$work/seed" "$work/m3" "$work/m30" "$work/m300" "$work/bin"
cp examples/seed-ha.yaml "$work/seed/cluster.yaml"
for n in 3 30 300; do masters "$n" >"$work/m$n/cluster.yaml"; done
for n in 3 30 300; do (cd "$work/m$n" && "$kb" build >/dev/null 2>&1); done

# (e): 120 MB, half compressible (text-like), half not (random).
head -c 62914560 /dev/urandom >"$work/bin/random"
head -c 62914560 < <(yes 'kube-apiserver stand-in: compressible text segment 0123456789') >"$work/bin/text"
cat "$work/bin/text" "$work/bin/random" >"$work/bin/kube-apiserver"
chmod 755 "$work/bin/kube-apiserver"
masters 3 | sed 's|apiserver: { extraArgs: {} }|apiserver: { extraArgs: {} }\nbinaries: { kubeApiserver: kube-apiserver }|' >"$work/bin/cluster.yaml"
(cd "$work/bin" && "$kb" build >/dev/null 2>&1)

json=$work/results.json
hyperfine --style basic --warmup 1 --runs 5 --export-json "$json" \
  -n seed-flow "bash bench/seed-flow.sh $work/seedflow" \
  -n build-empty-secrets "cd $work/seed && rm -rf secrets bundles && $kb build >/dev/null 2>&1" \
  -n build-3 "cd $work/m3 && $kb build >/dev/null 2>&1" \
  -n build-30 "cd $work/m30 && $kb build >/dev/null 2>&1" \
  -n build-300 "cd $work/m300 && $kb build >/dev/null 2>&1" \
  -n build-3-binary "cd $work/bin && $kb build >/dev/null 2>&1" \
  -n tar-czf-x3 "cd $work/bin && for n in 1 2 3; do tar czf t\$n.tar.gz kube-apiserver; done" >/dev/null

rss() { /usr/bin/time -f %M sh -c "$1" 2>&1 >/dev/null | tail -1; }
python3 - "$json" "$(rss "cd $work/bin && $kb build >/dev/null 2>&1")" "$(rss "cd $work/m300 && $kb build >/dev/null 2>&1")" <<'PY'
import json, sys
results = {r["command"]: r["median"] for r in json.load(open(sys.argv[1]))["results"]}
ms = lambda name: results[name] * 1000
print("| measurement | median |")
print("|---|---|")
for name in results:
    print(f"| {name} | {ms(name):.1f} ms |")
print()
print("| ratio / target | measured | target | met |")
print("|---|---|---|---|")
rows = [
    ("(b) build, empty secrets / (a) seed flow", ms("build-empty-secrets") / ms("seed-flow"), 0.2, "ratio"),
    ("(c) build, secrets present, 3 masters", ms("build-3"), 20, "ms"),
    ("(d) build, secrets present, 300 masters", ms("build-300"), 2000, "ms"),
    ("(e) 3 masters + 120 MB binary / 3x tar czf", ms("build-3-binary") / ms("tar-czf-x3"), 0.5, "ratio"),
]
for label, value, target, unit in rows:
    shown = f"{value:.2f}" if unit == "ratio" else f"{value:.1f} ms"
    goal = f"<= {target}" if unit == "ratio" else f"<= {target} ms"
    print(f"| {label} | {shown} | {goal} | {'yes' if value <= target else 'NO'} |")
print()
print(f"peak RSS: build with the 120 MB binary {int(sys.argv[2]) // 1024} MB (target <= 64 MB); 300 masters {int(sys.argv[3]) // 1024} MB")
PY
