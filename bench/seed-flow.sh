#!/usr/bin/env bash
# The seed guide's flow (06-2), minus ssh/scp, for timing against `kube-bundle build`:
# cfssl issues the CA and the apiserver certificate, sed renders one unit per master from
# the guide's template, and `tar czf` packs each master's files.
set -euo pipefail
work=$1
rm -rf "$work" && mkdir -p "$work" && cd "$work"
cat >ca-config.json <<'JSON'
{"signing":{"default":{"expiry":"87600h"},"profiles":{"kubernetes":{"usages":["signing","key encipherment","server auth","client auth"],"expiry":"87600h"}}}}
JSON
cat >ca-csr.json <<'JSON'
{"CN":"kubernetes","key":{"algo":"rsa","size":2048},"names":[{"C":"CN","ST":"BeiJing","L":"BeiJing","O":"k8s","OU":"4Paradigm"}]}
JSON
cfssl gencert -initca ca-csr.json 2>/dev/null | cfssljson -bare ca
cat >kubernetes-csr.json <<'JSON'
{"CN":"kubernetes","hosts":["127.0.0.1","172.27.128.150","172.27.128.149","172.27.128.148","10.254.0.1","kubernetes","kubernetes.default","kubernetes.default.svc","kubernetes.default.svc.cluster","kubernetes.default.svc.cluster.local"],"key":{"algo":"rsa","size":2048},"names":[{"C":"CN","ST":"BeiJing","L":"BeiJing","O":"k8s","OU":"4Paradigm"}]}
JSON
cfssl gencert -ca=ca.pem -ca-key=ca-key.pem -config=ca-config.json -profile=kubernetes kubernetes-csr.json 2>/dev/null | cfssljson -bare kubernetes
ENCRYPTION_KEY=$(head -c 32 /dev/urandom | base64)
cat >encryption-config.yaml <<YAML
kind: EncryptionConfig
apiVersion: v1
resources:
  - resources:
      - secrets
    providers:
      - aescbc:
          keys:
            - name: key1
              secret: ${ENCRYPTION_KEY}
      - identity: {}
YAML
cat >kube-apiserver.service.template <<'UNIT'
[Service]
ExecStart=/opt/k8s/bin/kube-apiserver \
  --advertise-address=##NODE_IP## \
  --bind-address=##NODE_IP## \
  --tls-cert-file=/etc/kubernetes/cert/kubernetes.pem \
  --tls-private-key-file=/etc/kubernetes/cert/kubernetes-key.pem
UNIT
NODE_IPS=(172.27.128.150 172.27.128.149 172.27.128.148)
for ip in "${NODE_IPS[@]}"; do
  sed -e "s/##NODE_IP##/${ip}/" kube-apiserver.service.template >"kube-apiserver-${ip}.service"
  tar czf "${ip}.tar.gz" ca.pem kubernetes.pem kubernetes-key.pem encryption-config.yaml "kube-apiserver-${ip}.service"
done
