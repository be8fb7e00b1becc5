#!/usr/bin/env python3
"""Writes the hostile cluster.yaml corpus next to this script: every file must make
`kube-bundle build` exit 1 with a clear message, never panic, and leave secrets/ and
bundles/ exactly as they were (tests/integration/hostile.rs). Rerun after editing:
    python3 tests/hostile/generate.py
"""
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = """apiVersion: kube-bundle/v1alpha1
kind: Cluster
name: hostile
kubernetesVersion: v1.36.1
controlPlaneEndpoint: api.example.com:6443
masters:
  - { name: cp1, ip: 10.20.0.11 }
  - { name: cp2, ip: 10.20.0.12 }
  - { name: cp3, ip: 10.20.0.13 }
network:
  serviceCIDR: 10.96.0.0/12
  nodePortRange: 30000-32767
  dnsDomain: cluster.local
etcd:
  endpoints: [https://10.20.0.11:2379, https://10.20.0.12:2379, https://10.20.0.13:2379]
  ca: separate
pki:
  keyAlgorithm: ecdsa-p256
  certValidity: 8760h
  caValidity: 87600h
  extraSANs: [lb.example.com]
encryption:
  provider: secretbox
paths: { binDir: /usr/local/bin, certDir: /etc/kubernetes/pki, configDir: /etc/kubernetes, dataDir: /var/lib/kubernetes }
apiserver:
  extraArgs: { profiling: "false" }
  audit: { enabled: true, maxAge: 30, maxBackup: 3, maxSize: 100 }
haFront: { kind: nginx, listen: 127.0.0.1:8443 }
"""

cases = {}


def add(name, text):
    assert name not in cases, name
    cases[name] = text


def replace(name, old, new):
    assert old in BASE, old
    add(name, BASE.replace(old, new, 1))


# -- malformed YAML
add("yaml-empty", "")
add("yaml-only-comment", "# nothing\n")
add("yaml-scalar-document", "just a string\n")
add("yaml-list-document", "- a\n- b\n")
add("yaml-tab-indent", BASE.replace("  serviceCIDR", "\tserviceCIDR", 1))
add("yaml-unclosed-flow", BASE.replace("[lb.example.com]", "[lb.example.com", 1))
add("yaml-unclosed-quote", BASE.replace("name: hostile", 'name: "hostile', 1))
add("yaml-bad-indent", BASE.replace("  nodePortRange", "    nodePortRange", 1))
add("yaml-stray-colon", BASE.replace("kind: Cluster", "kind: Cluster: extra", 1))
add("yaml-two-documents", BASE + "---\n" + BASE)
add("yaml-bad-escape", BASE.replace("name: hostile", 'name: "bad \\q escape"', 1))
add("yaml-undefined-alias", BASE.replace("name: hostile", "name: *nowhere", 1))
add("yaml-binary-garbage", "\x01\x02\x03\xff\xfe")
add("yaml-bom-garbage", "\ufeff\ufeff: :\n")
add("yaml-directive-only", "%YAML 1.2\n---\n")
add("yaml-json-broken", '{"apiVersion": "kube-bundle/v1alpha1", "kind": ')

# -- resource exhaustion
bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n"
for i in range(1, 12):
    bomb += f"{chr(97 + i)}: &{chr(97 + i)} [*{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}]\n"
add("bomb-billion-laughs", bomb)
add("bomb-alias-in-masters", "x: &x {name: cp1, ip: 10.0.0.1}\n" + BASE.replace("  - { name: cp3, ip: 10.20.0.13 }", "  - *x\n" * 3, 1))
add("deep-nesting-flow", "name: " + "[" * 5000 + "]" * 5000 + "\n")
add("deep-nesting-block", "".join("  " * i + "k:\n" for i in range(200)))
add("huge-name", BASE.replace("name: hostile", "name: " + "a" * 200_000, 1))
add("huge-file", BASE + "# " + "x" * (1024 * 1024 + 10) + "\n")
add("huge-master-list", BASE.replace("masters:\n", "masters:\n" + "".join(f"  - {{ name: m{i}, ip: 10.30.{i // 250}.{i % 250 + 1} }}\n" for i in range(5000)) + "  - { name: cp1, ip: 10.30.99.1 }\n", 1))
add("huge-extra-arg", BASE.replace('profiling: "false"', 'v: "' + "9" * 5000 + '"', 1))
add("huge-number", BASE.replace("maxAge: 30", "maxAge: 99999999999999999999999", 1))

# -- wrong types, field by field
scalars = {
    "apiVersion": "kube-bundle/v1alpha1", "kind": "Cluster", "name": "hostile",
    "kubernetesVersion": "v1.36.1", "controlPlaneEndpoint": "api.example.com:6443",
    "serviceCIDR": "10.96.0.0/12", "nodePortRange": "30000-32767", "dnsDomain": "cluster.local",
    "ca": "separate", "keyAlgorithm": "ecdsa-p256", "certValidity": "8760h",
    "caValidity": "87600h", "provider": "secretbox",
}
for field, value in scalars.items():
    for label, wrong in [("list", "[a, b]"), ("map", "{a: b}"), ("null", "~"), ("bool", "true"), ("number", "42")]:
        old = f"{field}: {value}"
        if label == "null" and field in ("controlPlaneEndpoint", "serviceCIDR", "nodePortRange", "dnsDomain", "ca", "keyAlgorithm", "certValidity", "caValidity", "provider"):
            continue  # optional fields: null means the default, which is valid
        replace(f"type-{field}-{label}", old, f"{field}: {wrong}")
for field, wrong in [("masters", "cp1"), ("masters", "{ name: cp1 }"), ("network", "[1]"), ("etcd", "https://x:2379"),
                     ("endpoints", "https://10.20.0.11:2379"), ("extraSANs", "lb.example.com"), ("paths", "/etc"),
                     ("extraArgs", "[profiling]"), ("audit", "true"), ("haFront", "nginx"), ("pki", "[]"),
                     ("encryption", "secretbox"), ("apiserver", "7")]:
    pattern = re.compile(rf"^(\s*){field}:.*$", re.M)
    match = pattern.search(BASE)
    assert match, field
    text = BASE[:match.start()] + f"{match.group(1)}{field}: {wrong}" + BASE[match.end():]
    # Drop the now-orphaned indented children of block mappings.
    add(f"type-{field}-shape-{len([k for k in cases if k.startswith('type-' + field + '-shape')])}", text)
replace("type-ip-list", "ip: 10.20.0.11", "ip: [10.20.0.11]")
replace("type-ip-number", "ip: 10.20.0.11", "ip: 168300555")
replace("type-maxage-string", "maxAge: 30", "maxAge: thirty")
replace("type-maxage-negative", "maxAge: 30", "maxAge: -1")
replace("type-enabled-string", "enabled: true", "enabled: perhaps")
replace("type-listen-number", "listen: 127.0.0.1:8443", "listen: 8443")
replace("unknown-top-key", "kind: Cluster", "kind: Cluster\nflavour: vanilla")
replace("unknown-master-key", "{ name: cp1, ip: 10.20.0.11 }", "{ name: cp1, ip: 10.20.0.11, role: master }")
replace("unknown-network-key", "  dnsDomain: cluster.local", "  dnsDomain: cluster.local\n  podCIDR: 10.244.0.0/16")
replace("unknown-enum-provider", "provider: secretbox", "provider: kms")
replace("unknown-enum-front", "kind: nginx", "kind: envoy")
replace("unknown-enum-algorithm", "keyAlgorithm: ecdsa-p256", "keyAlgorithm: ed25519")
replace("missing-masters", "masters:\n  - { name: cp1, ip: 10.20.0.11 }\n  - { name: cp2, ip: 10.20.0.12 }\n  - { name: cp3, ip: 10.20.0.13 }\n", "")
replace("missing-etcd", "etcd:\n  endpoints: [https://10.20.0.11:2379, https://10.20.0.12:2379, https://10.20.0.13:2379]\n  ca: separate\n", "")
replace("empty-masters", "masters:\n  - { name: cp1, ip: 10.20.0.11 }\n  - { name: cp2, ip: 10.20.0.12 }\n  - { name: cp3, ip: 10.20.0.13 }\n", "masters: []\n")

# -- injection attempts
payloads = {
    "dollar-paren": "$(reboot)", "backticks": "`id`", "semicolon": "a;rm -rf /",
    "single-quote": "a'b", "double-quote": 'a\\"b', "newline": "a\\nb", "nul": "a\\0b",
    "pipe": "a|b", "ampersand": "a&b", "redirect": "a>b", "glob": "a*b", "space": "a b",
    "cyrillic-lookalike": "ср1", "fullwidth": "ｃｐ１", "rtl-override": "cp\u202e1", "zero-width": "cp\u200b1",
    "percent": "a%nb", "backslash": "a\\\\b", "tab": "a\\tb", "dotdot": "../../etc",
}
for label, payload in payloads.items():
    replace(f"inject-name-{label}", "name: cp1,", f'name: "{payload}",')
for label in ["dollar-paren", "backticks", "semicolon", "newline", "nul", "space", "dotdot", "fullwidth", "glob", "single-quote"]:
    replace(f"inject-path-{label}", "certDir: /etc/kubernetes/pki", f'certDir: "/etc/{payloads[label]}"')
for label in ["dollar-paren", "newline", "nul", "space", "semicolon", "cyrillic-lookalike", "backticks", "glob"]:
    replace(f"inject-san-{label}", "extraSANs: [lb.example.com]", f'extraSANs: ["{payloads[label]}"]')
for label in ["newline", "nul", "tab", "rtl-override"]:
    replace(f"inject-extra-arg-value-{label}", 'profiling: "false"', f'profiling: "{payloads[label]}"')
for label in ["dollar-paren", "semicolon", "space", "dotdot", "newline"]:
    replace(f"inject-extra-arg-key-{label}", 'profiling: "false"', f'"{payloads[label]}": "1"')
for label in ["dollar-paren", "newline", "space"]:
    replace(f"inject-cluster-name-{label}", "name: hostile", f'name: "{payloads[label]}"')
    replace(f"inject-endpoint-{label}", "controlPlaneEndpoint: api.example.com:6443", f'controlPlaneEndpoint: "{payloads[label]}"')
    replace(f"inject-etcd-{label}", "https://10.20.0.12:2379", f'"https://{payloads[label]}:2379"')
    replace(f"inject-listen-{label}", "listen: 127.0.0.1:8443", f'listen: "{payloads[label]}"')
    replace(f"inject-binary-{label}", "kind: nginx,", f'kind: nginx, binary: "/usr/sbin/{payloads[label]}",')

# -- duplicates and overlaps
replace("dup-key-top", "kind: Cluster", "kind: Cluster\nkind: Cluster")
replace("dup-key-flow", "{ name: cp1, ip: 10.20.0.11 }", "{ name: cp1, name: cp9, ip: 10.20.0.11 }")
replace("dup-master-name", "name: cp2,", "name: cp1,")
replace("dup-master-ip", "ip: 10.20.0.12", "ip: 10.20.0.11")
replace("dup-etcd-endpoint", "https://10.20.0.12:2379", "https://10.20.0.11:2379")
replace("overlap-service-cidr-masters", "serviceCIDR: 10.96.0.0/12", "serviceCIDR: 10.16.0.0/12")
replace("overlap-node-ports-6443", "nodePortRange: 30000-32767", "nodePortRange: 1-65535")
replace("overlap-listen-6443", "listen: 127.0.0.1:8443", "listen: 127.0.0.1:6443")
replace("overlap-dual-stack-same-family", "serviceCIDR: 10.96.0.0/12", "serviceCIDR: 10.96.0.0/12,10.112.0.0/12")
replace("leaf-outlives-ca", "certValidity: 8760h", "certValidity: 999999h")
replace("version-ancient", "kubernetesVersion: v1.36.1", "kubernetesVersion: v1.2.0")
replace("version-future", "kubernetesVersion: v1.36.1", "kubernetesVersion: v1.99.0")
replace("version-garbage", "kubernetesVersion: v1.36.1", "kubernetesVersion: latest")
replace("removed-flag-for-version", 'profiling: "false"', 'insecure-port: "0"')

for old in os.listdir(HERE):
    if old.endswith(".yaml"):
        os.remove(os.path.join(HERE, old))
for index, (name, text) in enumerate(sorted(cases.items())):
    with open(os.path.join(HERE, f"{index:03}-{name}.yaml"), "w", encoding="utf-8", newline="") as f:
        f.write(text)
print(f"{len(cases)} hostile inputs written")
