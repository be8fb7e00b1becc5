//! The PKI stage checked with real tools: openssl verify / x509 / s_server / s_client, a real
//! etcd with client-certificate auth, and CAs made by cfssl and openssl.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kube_bundle::model::Cluster;
use kube_bundle::pki::{self, Decision, Pki};
use kube_bundle::plan::{self, CaName, LeafName, Plan};
use kube_bundle::secrets::{Access, SecretStore};
use kube_bundle::validate::ValidateOptions;
use tempfile::TempDir;
use time::OffsetDateTime;

use crate::harness::{KillOnDrop, issue_etcd_cert, s_client_get, wait_for};

/// A cluster with its PKI provisioned into a scratch directory, and every PEM written out
/// as `out/<node>/<cert>.crt|.key` and `out/<ca>.crt` for the tools to read.
struct Issued {
    dir: TempDir,
    cluster: Cluster,
    plan: Plan,
    pki: Pki,
}

impl Issued {
    fn from_yaml(yaml: &str) -> Self {
        Self::in_dir(tempfile::tempdir().unwrap(), yaml)
    }

    fn in_dir(dir: TempDir, yaml: &str) -> Self {
        fs::write(dir.path().join("cluster.yaml"), yaml).unwrap();
        let (cluster, plan, pki) = provision(dir.path(), OffsetDateTime::now_utc()).unwrap();
        let issued = Self {
            dir,
            cluster,
            plan,
            pki,
        };
        issued.write_out();
        issued
    }

    fn secrets(&self) -> PathBuf {
        self.dir.path().join("secrets")
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join("out").join(name)
    }

    fn write_out(&self) {
        let out = self.dir.path().join("out");
        fs::create_dir_all(&out).unwrap();
        fs::write(
            out.join("ca.crt"),
            self.pki.ca_cert_pem(CaName::Cluster).unwrap(),
        )
        .unwrap();
        fs::write(
            out.join("front-proxy-ca.crt"),
            self.pki.ca_cert_pem(CaName::FrontProxy).unwrap(),
        )
        .unwrap();
        if let Some(etcd) = self.pki.ca_cert_pem(CaName::Etcd) {
            fs::write(out.join("etcd-ca.crt"), etcd).unwrap();
        }
        if let Some(signer) = self.pki.ca_cert_pem(CaName::ClusterSigner) {
            fs::write(out.join("cluster-signer-ca.crt"), signer).unwrap();
            let key = self.pki.cluster_signer_key_pem.as_ref().unwrap();
            fs::write(out.join("cluster-signer-ca.key"), key).unwrap();
        }
        fs::write(out.join("sa.key"), &self.pki.service_account_key_pem).unwrap();
        fs::write(out.join("sa.pub"), &self.pki.service_account_pub_pem).unwrap();
        for (node, leaves) in &self.pki.nodes {
            fs::create_dir_all(out.join(node)).unwrap();
            for (name, leaf) in leaves {
                fs::write(out.join(format!("{node}/{name}.crt")), &leaf.cert_pem).unwrap();
                fs::write(out.join(format!("{node}/{name}.key")), leaf.key.to_pem()).unwrap();
            }
        }
    }
}

fn provision(dir: &Path, now: OffsetDateTime) -> Result<(Cluster, Plan, Pki), String> {
    let validated =
        kube_bundle::load_cluster(&dir.join("cluster.yaml"), ValidateOptions::default())
            .map_err(|e| e.to_string())?;
    let cluster = validated.cluster;
    let plan = plan::plan(&cluster);
    let store =
        SecretStore::open(&dir.join("secrets"), Access::ReadWrite).map_err(|e| e.to_string())?;
    let pki = pki::provision(&cluster, &plan, &store, now).map_err(|e| e.to_string())?;
    Ok((cluster, plan, pki))
}

fn example(name: &str) -> String {
    crate::harness::apiserver_only_example(name)
}

/// Runs a command; returns (success, stdout + stderr).
fn run(program: &str, args: &[&str], dir: &Path) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed (.ci/run installs it): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[track_caller]
fn openssl_ok(args: &[&str], dir: &Path) -> String {
    let (ok, text) = run("openssl", args, dir);
    assert!(ok, "openssl {args:?} failed:\n{text}");
    text
}

fn x509_text(cert: &Path) -> String {
    openssl_ok(
        &["x509", "-noout", "-text", "-in", cert.to_str().unwrap()],
        Path::new("."),
    )
}

/// Every file in a directory tree with its bytes, to compare secrets/ before and after.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        for entry in fs::read_dir(&path).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push((path.clone(), fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_leaf_verifies_strictly_against_its_ca_for_its_purpose() {
    // The whole master, and with stacked etcd its members' certificates too.
    for yaml in [
        whole_master_example(),
        crate::stacked::stacked_yaml("v1.37.2"),
    ] {
        let issued = Issued::from_yaml(&yaml);
        let dir = issued.dir.path();
        for (node, leaves) in &issued.pki.nodes {
            for (name, spec) in &issued.plan.nodes[node].certificates {
                assert!(leaves.contains_key(name));
                let ca = match spec.issuer {
                    plan::CaName::Cluster => "out/ca.crt",
                    plan::CaName::FrontProxy => "out/front-proxy-ca.crt",
                    plan::CaName::Etcd => "out/etcd-ca.crt",
                    plan::CaName::ClusterSigner => "out/cluster-signer-ca.crt",
                };
                // (purposes it must verify for, purposes it must not)
                let (purposes, others): (&[&str], &[&str]) = match spec.purpose {
                    plan::Purpose::ServerAuth => (&["sslserver"], &["sslclient"]),
                    plan::Purpose::ClientAuth => (&["sslclient"], &["sslserver"]),
                    plan::Purpose::ServerAndClientAuth => (&["sslserver", "sslclient"], &[]),
                };
                let cert = format!("out/{node}/{name}.crt");
                for purpose in purposes {
                    let text = openssl_ok(
                        &[
                            "verify",
                            "-x509_strict",
                            "-purpose",
                            purpose,
                            "-CAfile",
                            ca,
                            &cert,
                        ],
                        dir,
                    );
                    assert!(text.contains(": OK"), "{text}");
                }
                // The other purpose must fail: client certs cannot serve, servers cannot
                // log in.
                for other in others {
                    let (ok, _) = run(
                        "openssl",
                        &[
                            "verify",
                            "-x509_strict",
                            "-purpose",
                            other,
                            "-CAfile",
                            ca,
                            &cert,
                        ],
                        dir,
                    );
                    assert!(!ok, "{cert} verified for {other}");
                }
            }
        }
    }
}

#[test]
fn serving_certs_answer_to_every_planned_name_and_no_other() {
    let issued = Issued::from_yaml(&example("seed-ha.yaml"));
    let dir = issued.dir.path();
    for (node, node_plan) in &issued.plan.nodes {
        let cert = format!("out/{node}/apiserver.crt");
        let verify = |flag: &str, value: &str| {
            run(
                "openssl",
                &[
                    "verify",
                    "-x509_strict",
                    "-purpose",
                    "sslserver",
                    "-CAfile",
                    "out/ca.crt",
                    flag,
                    value,
                    &cert,
                ],
                dir,
            )
        };
        for dns in &node_plan.serving_cert_sans.dns {
            let (ok, text) = verify("-verify_hostname", dns);
            assert!(ok, "{node}: {dns}: {text}");
        }
        for ip in &node_plan.serving_cert_sans.ips {
            let (ok, text) = verify("-verify_ip", &ip.to_string());
            assert!(ok, "{node}: {ip}: {text}");
        }
        // The seed's names, spelled out so a regression in the SAN logic cannot hide.
        for name in [
            "kubernetes.default.svc.cluster",
            "kubernetes.default.svc.cluster.local",
            node.as_str(),
        ] {
            assert!(verify("-verify_hostname", name).0, "{node}: {name}");
        }
        for ip in ["127.0.0.1", "10.254.0.1"] {
            assert!(verify("-verify_ip", ip).0, "{node}: {ip}");
        }
        assert!(
            !verify("-verify_hostname", "evil.example.com").0,
            "{node} accepted a foreign name"
        );
        assert!(
            !verify("-verify_ip", "10.254.0.2").0,
            "{node} accepted a foreign IP"
        );
        let other = issued
            .cluster
            .masters
            .iter()
            .find(|m| m.name.as_str() != node)
            .unwrap();
        assert!(
            !verify("-verify_ip", &other.ip.to_string()).0,
            "{node} carries {}'s IP",
            other.name
        );
    }
}

#[test]
fn extensions_read_back_as_intended() {
    let issued = Issued::from_yaml(&example("cluster.yaml"));
    let ca = x509_text(&issued.out("ca.crt"));
    assert!(ca.contains("CA:TRUE"), "{ca}");
    assert!(
        ca.contains("Digital Signature, Certificate Sign, CRL Sign"),
        "{ca}"
    );
    assert!(ca.contains("Subject: CN = kubernetes"), "{ca}");

    let serving = x509_text(&issued.out("cp1/apiserver.crt"));
    assert!(serving.contains("CA:FALSE"), "{serving}");
    assert!(
        serving.contains("TLS Web Server Authentication"),
        "{serving}"
    );
    assert!(
        !serving.contains("TLS Web Client Authentication"),
        "{serving}"
    );
    assert!(
        serving.contains("X509v3 Subject Key Identifier"),
        "{serving}"
    );
    assert!(
        serving.contains("X509v3 Authority Key Identifier"),
        "{serving}"
    );
    assert!(
        serving.contains("ASN1 OID: prime256v1"),
        "ecdsa-p256 is the default: {serving}"
    );
    let usage = serving
        .split("X509v3 Key Usage: critical")
        .nth(1)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap();
    assert_eq!(
        usage.trim(),
        "Digital Signature",
        "no KeyEncipherment on EC keys"
    );

    let kubelet = x509_text(&issued.out("cp1/apiserver-kubelet-client.crt"));
    assert!(
        kubelet.contains("Subject: CN = kube-apiserver-kubelet-client"),
        "{kubelet}"
    );
    assert!(
        !kubelet.contains("system:masters"),
        "the kubelet client is no superuser"
    );
    // From 1.29 the admin is in a group a ClusterRoleBinding makes cluster-admin (revocable);
    // the seed's own release keeps the unrevocable system:masters.
    let admin = x509_text(&issued.out("cp1/admin.crt"));
    assert!(
        admin.contains("Subject: O = kube-bundle:cluster-admins, CN = kubernetes-admin"),
        "{admin}"
    );
    let seed = Issued::from_yaml(&example("seed-ha.yaml"));
    let seed_admin = x509_text(&seed.out("m7-autocv-gpu01/admin.crt"));
    assert!(
        seed_admin.contains("Subject: O = system:masters, CN = kubernetes-admin"),
        "{seed_admin}"
    );

    // The seed uses RSA: leaves then carry KeyEncipherment as RSA key transport needs.
    let rsa = x509_text(&seed.out("m7-autocv-gpu01/apiserver.crt"));
    assert!(rsa.contains("Public-Key: (2048 bit)"), "{rsa}");
    assert!(rsa.contains("Digital Signature, Key Encipherment"), "{rsa}");
}

#[test]
fn validity_and_serials_follow_the_config() {
    let yaml = example("cluster.yaml").replace("certValidity: 8760h", "certValidity: 720h");
    let issued = Issued::from_yaml(&yaml);
    let text = openssl_ok(
        &[
            "x509",
            "-noout",
            "-enddate",
            "-startdate",
            "-serial",
            "-in",
            issued.out("cp1/apiserver.crt").to_str().unwrap(),
        ],
        Path::new("."),
    );
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .to_owned()
    };
    let parse = |s: String| {
        let out = Command::new("date")
            .args(["-u", "-d", &s, "+%s"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse::<i64>()
            .unwrap()
    };
    let lifetime = parse(field("notAfter=")) - parse(field("notBefore="));
    assert_eq!(lifetime, 720 * 3600);
    let serials: std::collections::BTreeSet<String> =
        ["cp1/apiserver.crt", "cp2/apiserver.crt", "cp1/admin.crt"]
            .iter()
            .map(|c| {
                openssl_ok(
                    &[
                        "x509",
                        "-noout",
                        "-serial",
                        "-in",
                        issued.out(c).to_str().unwrap(),
                    ],
                    Path::new("."),
                )
            })
            .collect();
    assert_eq!(serials.len(), 3, "serials are unique");
}

#[test]
fn service_account_key_pair_matches() {
    let issued = Issued::from_yaml(&example("cluster.yaml"));
    let derived = openssl_ok(
        &[
            "pkey",
            "-pubout",
            "-in",
            issued.out("sa.key").to_str().unwrap(),
        ],
        Path::new("."),
    );
    assert_eq!(derived, issued.pki.service_account_pub_pem);
}

#[test]
fn rebuilding_reuses_everything_and_writes_nothing() {
    let issued = Issued::from_yaml(&example("cluster.yaml"));
    let before = snapshot(&issued.secrets());
    let (_, _, again) = provision(issued.dir.path(), OffsetDateTime::now_utc()).unwrap();
    assert_eq!(
        snapshot(&issued.secrets()),
        before,
        "secrets/ changed on a rebuild"
    );
    for decisions in again.decisions.values() {
        assert!(
            decisions.values().all(|d| *d == Decision::Reuse),
            "{decisions:?}"
        );
    }
    assert_eq!(
        again.nodes["cp1"][&LeafName::Apiserver].cert_pem,
        issued.pki.nodes["cp1"][&LeafName::Apiserver].cert_pem
    );
}

#[test]
fn new_sans_reissue_exactly_the_serving_certs_and_say_why() {
    let issued = Issued::from_yaml(&example("cluster.yaml"));
    let yaml = example("cluster.yaml").replace("extraSANs: []", "extraSANs: [lb.example.com]");
    fs::write(issued.dir.path().join("cluster.yaml"), yaml).unwrap();
    let (_, _, again) = provision(issued.dir.path(), OffsetDateTime::now_utc()).unwrap();
    for (node, decisions) in &again.decisions {
        for (cert, decision) in decisions {
            if *cert == LeafName::Apiserver {
                assert_eq!(
                    *decision,
                    Decision::Reissue("SANs changed (+DNS:lb.example.com)".into()),
                    "{node}"
                );
                assert_ne!(
                    again.nodes[node][cert].cert_pem,
                    issued.pki.nodes[node][cert].cert_pem
                );
            } else {
                assert_eq!(*decision, Decision::Reuse, "{node}/{cert}");
            }
        }
    }
}

#[test]
fn leaves_are_reissued_once_two_thirds_of_their_life_is_gone() {
    let issued = Issued::from_yaml(&example("cluster.yaml"));
    // 250 of 365 days gone leaves 115, under a third.
    let later = OffsetDateTime::now_utc() + time::Duration::days(250);
    let (_, _, aged) = provision(issued.dir.path(), later).unwrap();
    let decision = &aged.decisions["cp1"][&LeafName::Apiserver];
    assert!(
        matches!(decision, Decision::Reissue(why) if why.contains("less than a third")),
        "{decision:?}"
    );
    let (_, _, fresh) = provision(issued.dir.path(), later).unwrap();
    assert_eq!(
        fresh.decisions["cp1"][&LeafName::Apiserver],
        Decision::Reuse,
        "re-issued certs are reused"
    );
}

#[test]
fn plan_reports_new_reuse_and_reissue() {
    let issued = Issued::from_yaml(&example("cluster.yaml"));
    let dir = issued.dir.path();
    let run = crate::harness::kube_bundle(dir, &["plan", "--secrets", "secrets"]);
    run.code(0).stdout_has("apiserver                  reuse");
    fs::write(
        dir.join("cluster.yaml"),
        example("cluster.yaml").replace("name: cp3", "name: cp4"),
    )
    .unwrap();
    let run =
        crate::harness::kube_bundle(dir, &["plan", "--secrets", "secrets", "--output", "json"]);
    run.code(0);
    let json: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(
        json["nodes"]["cp4"]["certificates"]["apiserver"]["decision"]["action"],
        "new"
    );
    assert_eq!(
        json["nodes"]["cp1"]["certificates"]["admin"]["decision"]["action"],
        "reuse"
    );
    assert!(!dir.join("secrets/nodes/cp4").exists(), "plan never writes");
}

/// A real TLS handshake: s_server presents a node's serving cert and demands a client
/// cert; s_client checks the seed's DNS name and presents the admin cert.
#[test]
fn tls_handshake_with_serving_and_admin_certs() {
    let issued = Issued::from_yaml(&example("cluster.yaml"));
    let dir = issued.dir.path();
    let port = free_port();
    let server = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            "out/cp1/apiserver.crt",
            "-key",
            "out/cp1/apiserver.key",
            "-CAfile",
            "out/ca.crt",
            "-Verify",
            "1",
            "-verify_return_error",
            "-www",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = KillOnDrop(server);
    wait_for(&format!("127.0.0.1:{port}"));
    let address = format!("127.0.0.1:{port}");
    let connect = |extra: &[&str]| {
        let mut args = vec![
            "-connect",
            &address,
            "-CAfile",
            "out/ca.crt",
            "-verify_return_error",
            "-verify_hostname",
            "kubernetes.default.svc.cluster.local",
        ];
        args.extend_from_slice(extra);
        s_client_get(dir, &args)
    };
    let (ok, text) = connect(&["-cert", "out/cp1/admin.crt", "-key", "out/cp1/admin.key"]);
    assert!(
        ok && text.contains("Verify return code: 0 (ok)") && text.contains("HTTP/1.0 200"),
        "{ok} {text}"
    );
    // A client certificate from another CA is refused by the server.
    let (_, text) = connect(&[
        "-cert",
        "out/cp1/front-proxy-client.crt",
        "-key",
        "out/cp1/front-proxy-client.key",
    ]);
    assert!(
        !text.contains("HTTP/1.0 200"),
        "front-proxy-client was accepted:\n{text}"
    );
}

/// A real etcd (Debian's etcd-server) trusting the etcd CA with client-cert auth accepts
/// put/get with apiserver-etcd-client and refuses the front-proxy-client certificate.
#[test]
fn a_real_etcd_accepts_the_etcd_client_cert_only() {
    for mode in ["separate", "cluster"] {
        let yaml = example("cluster.yaml").replace("ca: separate", &format!("ca: {mode}"));
        let issued = Issued::from_yaml(&yaml);
        let dir = issued.dir.path();
        let etcd_ca = if mode == "separate" { "etcd-ca" } else { "ca" };
        // etcd's own serving cert, issued by the test with openssl from the stored CA key.
        issue_etcd_cert(
            dir,
            &dir.join(format!("secrets/{etcd_ca}.pem")),
            "etcd",
            "IP:127.0.0.1",
            7,
        );

        let (client_port, peer_port) = (free_port(), free_port());
        let client_url = format!("https://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd = Command::new("etcd")
            .args([
                "--name",
                "t",
                "--data-dir",
                "etcd-data",
                "--listen-client-urls",
                &client_url,
                "--advertise-client-urls",
                &client_url,
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
                "--initial-cluster",
                &format!("t={peer_url}"),
                "--cert-file",
                "etcd.crt",
                "--key-file",
                "etcd.key",
                "--trusted-ca-file",
                "etcd-ca.crt",
                "--client-cert-auth",
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("etcd.log")).unwrap())
            .spawn()
            .expect("etcd must be installed (.ci/run installs etcd-server)");
        let _etcd = KillOnDrop(etcd);
        let etcdctl = |cert: &str, args: &[&str]| {
            let mut all = vec![
                "--endpoints",
                &client_url,
                "--cacert",
                "etcd-ca.crt",
                "--dial-timeout",
                "30s",
                "--command-timeout",
                "30s",
            ];
            let cert_path = format!("out/cp1/{cert}.crt");
            let key_path = format!("out/cp1/{cert}.key");
            all.extend(["--cert", &cert_path, "--key", &key_path]);
            all.extend_from_slice(args);
            let output = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(&all)
                .current_dir(dir)
                .output()
                .unwrap();
            (
                output.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            )
        };
        // A hang guard only: the loop ends as soon as etcd answers.
        let deadline = Instant::now() + Duration::from_secs(120);
        while !etcdctl("apiserver-etcd-client", &["endpoint", "health"]).0 {
            assert!(
                Instant::now() < deadline,
                "etcd did not come up: {}",
                fs::read_to_string(dir.join("etcd.log")).unwrap()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let (ok, text) = etcdctl(
            "apiserver-etcd-client",
            &["put", "/registry/kube-bundle", "ok"],
        );
        assert!(ok, "{mode}: put refused: {text}");
        let (ok, text) = etcdctl("apiserver-etcd-client", &["get", "/registry/kube-bundle"]);
        assert!(ok && text.contains("ok"), "{mode}: get: {text}");
        // The refusal, through etcd's JSON gateway with curl: etcdctl reports a rejected
        // certificate only as "context deadline exceeded", which a timeout on a slow
        // machine would produce too. curl names the TLS alert etcd sends; TLS 1.2 puts it
        // in the handshake (under 1.3 it races the request, and curl may only see a
        // reset). The same request with the etcd client cert is the control that only
        // the certificate differs.
        let range = |cert: &str| {
            let output = Command::new("curl")
                .args([
                    "--silent",
                    "--show-error",
                    "--max-time",
                    "30",
                    "--tls-max",
                    "1.2",
                ])
                .args(["--cacert", "etcd-ca.crt"])
                .args(["--cert", &format!("out/cp1/{cert}.crt")])
                .args(["--key", &format!("out/cp1/{cert}.key")])
                // {"key": base64("/registry/kube-bundle")}
                .args(["--data", r#"{"key": "L3JlZ2lzdHJ5L2t1YmUtYnVuZGxl"}"#])
                .arg(format!("{client_url}/v3/kv/range"))
                .current_dir(dir)
                .output()
                .expect("curl must be installed");
            (
                output.status.code(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            )
        };
        let (code, text) = range("apiserver-etcd-client");
        assert!(
            code == Some(0) && text.contains(r#""value":"b2s=""#),
            "{mode}: range with the etcd client cert: {code:?} {text}"
        );
        let (code, text) = range("front-proxy-client");
        assert!(
            code != Some(0),
            "{mode}: etcd accepted the front-proxy-client cert: {text}"
        );
        assert!(
            code == Some(35)
                && ["alert bad certificate", "alert unknown ca"]
                    .iter()
                    .any(|alert| text.contains(alert)),
            "{mode}: the front-proxy-client cert failed otherwise than by etcd refusing it \
             in the TLS handshake: {code:?} {text}"
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------------------
// Importing CAs made by other tools

/// A scratch dir holding cluster.yaml with importCA pointing at ca.pem / ca-key.pem.
fn import_dir(make_ca: impl FnOnce(&Path)) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path());
    let yaml = example("seed-ha.yaml").replace(
        "  keyAlgorithm: rsa-2048",
        "  keyAlgorithm: ecdsa-p256\n  importCA: { cert: ca.pem, key: ca-key.pem }",
    );
    fs::write(dir.path().join("cluster.yaml"), yaml).unwrap();
    dir
}

fn cfssl_ca(dir: &Path, algo: &str, size: u32) {
    let csr = format!(
        r#"{{"CN":"kubernetes","key":{{"algo":"{algo}","size":{size}}},"names":[{{"C":"CN","ST":"BeiJing","L":"BeiJing","O":"k8s","OU":"4Paradigm"}}]}}"#
    );
    fs::write(dir.join("ca-csr.json"), csr).unwrap();
    let script = "cfssl gencert -initca ca-csr.json | cfssljson -bare ca";
    let (ok, text) = run("sh", &["-c", script], dir);
    assert!(
        ok && dir.join("ca-key.pem").exists(),
        "cfssl (golang-cfssl) failed: {text}"
    );
}

fn openssl_ca(dir: &Path, key_spec: &[&str]) {
    let mut args = vec![
        "req",
        "-x509",
        "-nodes",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        "-days",
        "3650",
        "-subj",
        "/O=Example Corp/CN=example-root",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ];
    args.extend_from_slice(key_spec);
    openssl_ok(&args, dir);
}

#[test]
fn cas_made_by_cfssl_and_openssl_are_imported_and_sign_verifiable_leaves() {
    type Maker = Box<dyn FnOnce(&Path)>;
    let makers: Vec<(&str, Maker, &str)> = vec![
        (
            "cfssl rsa",
            Box::new(|d| cfssl_ca(d, "rsa", 2048)),
            "RSA PRIVATE KEY",
        ),
        (
            "cfssl ecdsa",
            Box::new(|d| cfssl_ca(d, "ecdsa", 256)),
            "EC PRIVATE KEY",
        ),
        (
            "openssl rsa",
            Box::new(|d| openssl_ca(d, &["-newkey", "rsa:2048"])),
            "BEGIN PRIVATE KEY",
        ),
        (
            "openssl ec",
            Box::new(|d| openssl_ca(d, &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])),
            "BEGIN PRIVATE KEY",
        ),
    ];
    for (label, make, key_kind) in makers {
        let dir = import_dir(make);
        let key = fs::read_to_string(dir.path().join("ca-key.pem")).unwrap();
        assert!(
            key.contains(key_kind),
            "{label}: the test meant to import a {key_kind}"
        );
        let original_ca = fs::read_to_string(dir.path().join("ca.pem")).unwrap();
        let yaml = fs::read_to_string(dir.path().join("cluster.yaml")).unwrap();
        let issued = Issued::in_dir(dir, &yaml);
        let d = issued.dir.path();
        assert_eq!(
            issued.pki.ca_cert_pem(CaName::Cluster).unwrap().trim(),
            original_ca.trim(),
            "{label}: the CA is adopted as is"
        );
        for cert in [
            "apiserver",
            "apiserver-kubelet-client",
            "apiserver-etcd-client",
            "admin",
        ] {
            let path = format!("out/m7-autocv-gpu01/{cert}.crt");
            let purpose = if cert == "apiserver" {
                "sslserver"
            } else {
                "sslclient"
            };
            let text = openssl_ok(
                &[
                    "verify",
                    "-x509_strict",
                    "-purpose",
                    purpose,
                    "-CAfile",
                    "ca.pem",
                    &path,
                ],
                d,
            );
            assert!(text.contains(": OK"), "{label} {cert}: {text}");
        }
        // Go finds a parent by the raw issuer bytes: they must equal the CA's raw subject.
        let issuer = openssl_ok(
            &[
                "x509",
                "-noout",
                "-issuer",
                "-nameopt",
                "RFC2253",
                "-in",
                "out/m7-autocv-gpu01/apiserver.crt",
            ],
            d,
        );
        let subject = openssl_ok(
            &[
                "x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", "ca.pem",
            ],
            d,
        );
        assert_eq!(
            issuer.trim_start_matches("issuer="),
            subject.trim_start_matches("subject="),
            "{label}"
        );
        let leaf_der = pem_der(&issued.pki.nodes["m7-autocv-gpu01"][&LeafName::Apiserver].cert_pem);
        let ca_der = pem_der(&original_ca);
        assert!(
            contains(&leaf_der, &raw_subject(&ca_der)),
            "{label}: issuer bytes differ from the CA subject"
        );
    }
}

fn pem_der(text: &str) -> Vec<u8> {
    pem::parse(text).unwrap().contents().to_vec()
}

fn raw_subject(der: &[u8]) -> Vec<u8> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).unwrap();
    cert.subject().as_raw().to_vec()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[track_caller]
fn import_fails(make_ca: impl FnOnce(&Path), fragments: &[&str]) {
    import_fails_at(OffsetDateTime::now_utc(), make_ca, fragments);
}

#[track_caller]
fn import_fails_at(now: OffsetDateTime, make_ca: impl FnOnce(&Path), fragments: &[&str]) {
    let dir = import_dir(make_ca);
    let before = snapshot(dir.path());
    let err = provision(dir.path(), now).map(|_| ()).unwrap_err();
    for fragment in fragments {
        assert!(err.contains(fragment), "{err:?} lacks {fragment:?}");
    }
    let after: Vec<_> = snapshot(dir.path())
        .into_iter()
        .filter(|(p, _)| !p.starts_with(dir.path().join("secrets")))
        .collect();
    assert_eq!(after, before, "the user's files were touched");
    let stored = snapshot(&dir.path().join("secrets"));
    assert!(
        stored
            .iter()
            .all(|(p, _)| p.ends_with(".lock") || p.ends_with(".gitignore")),
        "secrets were written: {stored:?}"
    );
}

#[test]
fn broken_cas_are_refused_with_the_file_named() {
    import_fails(
        |d| {
            openssl_ca(d, &["-newkey", "rsa:2048"]);
            openssl_ok(
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-out",
                    "ca-key.pem",
                ],
                d,
            );
        },
        &["ca-key.pem", "does not belong to the certificate"],
    );
    import_fails(
        |d| {
            openssl_ok(
                &[
                    "req",
                    "-x509",
                    "-nodes",
                    "-newkey",
                    "rsa:2048",
                    "-keyout",
                    "ca-key.pem",
                    "-out",
                    "ca.pem",
                    "-subj",
                    "/CN=leaf",
                    "-addext",
                    "basicConstraints=critical,CA:FALSE",
                ],
                d,
            );
        },
        &["ca.pem", "not a CA"],
    );
    import_fails(
        |d| {
            openssl_ca(d, &["-newkey", "rsa:2048"]);
            let text = fs::read_to_string(d.join("ca.pem")).unwrap();
            fs::write(d.join("ca.pem"), &text[..text.len() / 2]).unwrap();
        },
        &["ca.pem", "PEM"],
    );
    import_fails(
        |d| {
            openssl_ca(d, &["-newkey", "rsa:2048"]);
            openssl_ok(
                &[
                    "pkey",
                    "-in",
                    "ca-key.pem",
                    "-aes256",
                    "-passout",
                    "pass:secret",
                    "-out",
                    "enc.pem",
                ],
                d,
            );
            fs::rename(d.join("enc.pem"), d.join("ca-key.pem")).unwrap();
        },
        &["ca-key.pem", "password-protected"],
    );
    // A CA valid for one day, imported three days later.
    let later = OffsetDateTime::now_utc() + time::Duration::days(3);
    import_fails_at(
        later,
        |d| {
            openssl_ok(
                &[
                    "req",
                    "-x509",
                    "-nodes",
                    "-newkey",
                    "rsa:2048",
                    "-keyout",
                    "ca-key.pem",
                    "-out",
                    "ca.pem",
                    "-subj",
                    "/CN=old",
                    "-days",
                    "1",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                ],
                d,
            );
        },
        &["ca.pem", "expired"],
    );
}

#[test]
fn an_import_naming_a_different_ca_than_the_stored_one_is_refused() {
    let dir = import_dir(|d| openssl_ca(d, &["-newkey", "rsa:2048"]));
    provision(dir.path(), OffsetDateTime::now_utc()).unwrap();
    let before = snapshot(&dir.path().join("secrets"));
    openssl_ca(dir.path(), &["-newkey", "rsa:2048"]);
    let err = provision(dir.path(), OffsetDateTime::now_utc())
        .map(|_| ())
        .unwrap_err();
    assert!(
        err.contains("already holds a different cluster CA"),
        "{err}"
    );
    assert_eq!(snapshot(&dir.path().join("secrets")), before);
}

#[test]
fn a_corrupt_stored_leaf_is_reported_and_kept() {
    let issued = Issued::from_yaml(&example("cluster.yaml"));
    let leaf = issued.secrets().join("nodes/cp2/apiserver.pem");
    fs::write(&leaf, "-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    let err = provision(issued.dir.path(), OffsetDateTime::now_utc())
        .map(|_| ())
        .unwrap_err();
    assert!(
        err.contains("nodes/cp2/apiserver.pem") && err.contains("never overwrites"),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(&leaf).unwrap(),
        "-----BEGIN CERTIFICATE-----\ngarbage\n"
    );
}

#[test]
fn no_key_material_in_errors_or_debug_output() {
    let issued = Issued::from_yaml(&example("cluster.yaml"));
    let key = issued.pki.nodes["cp1"][&LeafName::Apiserver].key.to_pem();
    let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    let debug = format!("{:?}", issued.pki);
    assert!(
        !debug.contains(&body[..40]),
        "Debug output shows a private key"
    );
}

/// `etcd.ca: external`: the user's etcd CA, client cert and key are shipped as given.
#[test]
fn external_etcd_credentials_are_shipped_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl_ok(
        &[
            "req",
            "-x509",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-keyout",
            "etcd-ca.key",
            "-out",
            "etcd-ca.pem",
            "-subj",
            "/CN=their-etcd-ca",
            "-days",
            "365",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
        d,
    );
    openssl_ok(
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-keyout",
            "client-key.pem",
            "-subj",
            "/CN=their-client",
            "-out",
            "client.csr",
        ],
        d,
    );
    openssl_ok(
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "etcd-ca.pem",
            "-CAkey",
            "etcd-ca.key",
            "-set_serial",
            "9",
            "-days",
            "365",
            "-out",
            "client.pem",
        ],
        d,
    );
    let yaml = example("cluster.yaml").replace(
        "  ca: separate",
        "  ca: external\n  external: { ca: etcd-ca.pem, cert: client.pem, key: client-key.pem }",
    );
    let issued = Issued::in_dir(dir, &yaml);
    let d = issued.dir.path();
    let client = fs::read_to_string(d.join("client.pem")).unwrap();
    assert_eq!(
        issued.pki.nodes["cp1"][&LeafName::ApiserverEtcdClient]
            .cert_pem
            .trim(),
        client.trim()
    );
    assert_eq!(
        issued.pki.ca_cert_pem(CaName::Etcd).map(str::trim),
        Some(fs::read_to_string(d.join("etcd-ca.pem")).unwrap().trim())
    );
    assert_eq!(
        issued.pki.decisions["cp1"][&LeafName::ApiserverEtcdClient],
        Decision::External
    );
    assert!(
        !issued.plan.nodes["cp1"]
            .certificates
            .contains_key(&LeafName::ApiserverEtcdClient),
        "kube-bundle issues no etcd client cert"
    );
    // A key that does not match the client cert is refused, naming the file.
    openssl_ok(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "client-key.pem",
        ],
        d,
    );
    let err = provision(d, OffsetDateTime::now_utc())
        .map(|_| ())
        .unwrap_err();
    assert!(
        err.contains("client-key.pem") && err.contains("does not belong"),
        "{err}"
    );
}

/// The admin kubeconfig's group across the boundary release: system:masters up to 1.28 (as
/// kubeadm had it), a group bound to cluster-admin by a shipped ClusterRoleBinding from
/// 1.29, with install.sh applying the manifests through the front-proxy identity.
#[test]
fn the_admin_group_is_revocable_from_1_29_and_install_sh_bootstraps_its_binding() {
    for (version, group, manifest_user) in [
        ("v1.28.15", "system:masters", "''"),
        (
            "v1.29.15",
            "kube-bundle:cluster-admins",
            "kube-bundle:installer",
        ),
    ] {
        let project = crate::harness::Project::new();
        project.edit(
            "kubernetesVersion: v1.37.2",
            &format!("kubernetesVersion: {version}"),
        );
        project.build();
        let (_, entries) = kube_bundle::verify::read_entries(&project.bundle("cp1")).unwrap();
        let text = |path: &str| entries[path].text.clone().unwrap();
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("admin.crt"),
            text("rootfs/etc/kubernetes/pki/admin.crt"),
        )
        .unwrap();
        let subject = openssl_ok(
            &[
                "x509",
                "-noout",
                "-subject",
                "-nameopt",
                "RFC2253",
                "-in",
                "admin.crt",
            ],
            dir.path(),
        );
        assert!(
            subject.contains(&format!("O={group}")),
            "{version}: {subject}"
        );
        let binding = entries.get("manifests/kube-bundle-cluster-admins.yaml");
        let installer = text("install.sh");
        assert!(
            installer.contains(&format!("\nMANIFEST_USER={manifest_user}\n")),
            "{version}: {installer}"
        );
        if group == "system:masters" {
            assert!(
                binding.is_none(),
                "{version} ships a binding it does not need"
            );
            assert!(installer.contains("MANIFEST_CERT=/etc/kubernetes/pki/admin.crt"));
        } else {
            let binding = binding.and_then(|b| b.text.clone()).expect("the binding");
            let binding: serde_json::Value = serde_saphyr::from_str(&binding).unwrap();
            assert_eq!(binding["roleRef"]["name"], "cluster-admin");
            assert_eq!(binding["subjects"][0]["kind"], "Group");
            assert_eq!(binding["subjects"][0]["name"], group);
            assert!(
                installer.contains("MANIFEST_CERT=/etc/kubernetes/pki/front-proxy-client.crt")
                    && installer.contains("MANIFEST_GROUP=system:masters"),
                "{installer}"
            );
        }
    }
}

/// The example with the controller manager and the scheduler on every master.
fn whole_master_example() -> String {
    example("cluster.yaml").replacen(
        "binaries:",
        "controllerManager: {}\nscheduler: {}\nbinaries:",
        1,
    )
}

#[test]
fn the_csr_signer_is_an_intermediate_under_the_cluster_ca_and_signs_what_it_trusts() {
    let issued = Issued::from_yaml(&whole_master_example());
    let out = issued.dir.path().join("out");
    openssl_ok(
        &[
            "verify",
            "-x509_strict",
            "-CAfile",
            "ca.crt",
            "cluster-signer-ca.crt",
        ],
        &out,
    );
    let text = openssl_ok(
        &["x509", "-in", "cluster-signer-ca.crt", "-noout", "-text"],
        &out,
    );
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    // What the controller manager signs (a kubelet's client CSR, say) chains to the
    // cluster CA through the signer, which is all a verifier holding ca.crt needs.
    openssl_ok(
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "node.key",
            "-subj",
            "/O=system:nodes/CN=system:node:w1",
            "-out",
            "node.csr",
        ],
        &out,
    );
    fs::write(
        out.join("client.ext"),
        "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n",
    )
    .unwrap();
    openssl_ok(
        &[
            "x509",
            "-req",
            "-in",
            "node.csr",
            "-CA",
            "cluster-signer-ca.crt",
            "-CAkey",
            "cluster-signer-ca.key",
            "-set_serial",
            "7",
            "-days",
            "1",
            "-extfile",
            "client.ext",
            "-out",
            "node.crt",
        ],
        &out,
    );
    openssl_ok(
        &[
            "verify",
            "-x509_strict",
            "-purpose",
            "sslclient",
            "-CAfile",
            "ca.crt",
            "-untrusted",
            "cluster-signer-ca.crt",
            "node.crt",
        ],
        &out,
    );
    // The signer's key is the one CA key the build hands out; the cluster CA's stays in
    // secrets/.
    let root = fs::read_to_string(issued.secrets().join("ca.pem")).unwrap();
    let signer_key = issued.pki.cluster_signer_key_pem.as_deref().unwrap();
    assert!(!root.contains(signer_key.trim()));
    for node in ["cp1", "cp2", "cp3"] {
        let client = openssl_ok(
            &[
                "x509",
                "-in",
                &format!("{node}/controller-manager.crt"),
                "-noout",
                "-subject",
                "-nameopt",
                "RFC2253",
            ],
            &out,
        );
        assert_eq!(client.trim(), "subject=CN=system:kube-controller-manager");
        let client = openssl_ok(
            &[
                "x509",
                "-in",
                &format!("{node}/scheduler.crt"),
                "-noout",
                "-subject",
                "-nameopt",
                "RFC2253",
            ],
            &out,
        );
        assert_eq!(client.trim(), "subject=CN=system:kube-scheduler");
        for server in ["controller-manager-server", "scheduler-server"] {
            openssl_ok(
                &[
                    "verify",
                    "-x509_strict",
                    "-purpose",
                    "sslserver",
                    "-verify_ip",
                    "127.0.0.1",
                    "-CAfile",
                    "ca.crt",
                    &format!("{node}/{server}.crt"),
                ],
                &out,
            );
            openssl_ok(
                &[
                    "verify",
                    "-x509_strict",
                    "-purpose",
                    "sslserver",
                    "-verify_hostname",
                    node,
                    "-CAfile",
                    "ca.crt",
                    &format!("{node}/{server}.crt"),
                ],
                &out,
            );
        }
    }
}

#[test]
fn an_apiserver_only_cluster_has_no_signer_and_no_component_certificates() {
    let issued = Issued::from_yaml(&example("cluster.yaml"));
    assert!(issued.pki.ca_cert_pem(CaName::ClusterSigner).is_none());
    assert!(issued.pki.cluster_signer_key_pem.is_none());
    assert!(!issued.secrets().join("cluster-signer-ca.pem").exists());
    for leaves in issued.pki.nodes.values() {
        assert!(!leaves.contains_key(&LeafName::ControllerManager));
        assert!(!leaves.contains_key(&LeafName::SchedulerServer));
    }
}

#[test]
fn a_signer_the_cluster_ca_did_not_sign_is_refused_never_replaced() {
    let issued = Issued::from_yaml(&whole_master_example());
    // Another cluster's signer dropped into this store.
    let other = Issued::from_yaml(&whole_master_example());
    let stranger = fs::read(other.secrets().join("cluster-signer-ca.pem")).unwrap();
    let stored = issued.secrets().join("cluster-signer-ca.pem");
    fs::write(&stored, &stranger).unwrap();
    let failed = provision(issued.dir.path(), OffsetDateTime::now_utc()).unwrap_err();
    assert!(
        failed.contains("was not signed by the stored cluster CA"),
        "{failed}"
    );
    assert_eq!(
        fs::read(&stored).unwrap(),
        stranger,
        "the file is the operator's to move"
    );
}

#[test]
fn a_cluster_ca_that_allows_no_intermediate_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
            "-days",
            "3650",
            "-subj",
            "/CN=pathlen0-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE,pathlen:0",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        ],
        dir.path(),
    );
    let yaml = whole_master_example().replace(
        "# importCA: { cert: ca.pem, key: ca-key.pem }",
        "importCA: { cert: ca.pem, key: ca-key.pem }",
    );
    fs::write(dir.path().join("cluster.yaml"), &yaml).unwrap();
    let failed = provision(dir.path(), OffsetDateTime::now_utc()).unwrap_err();
    assert!(
        failed.contains("allows no intermediate CA (pathlen:0)"),
        "{failed}"
    );
}

/// A first build makes its keys up front, all at once: exactly as many as it stores (none
/// wasted, none made late), and as many as the progress line announces.
#[test]
fn a_first_build_makes_exactly_the_keys_it_stores() {
    let dir = tempfile::tempdir().unwrap();
    let yaml =
        fs::read_to_string(crate::harness::repo_root().join("examples/cluster.yaml")).unwrap();
    fs::write(dir.path().join("cluster.yaml"), yaml).unwrap();
    let validated =
        kube_bundle::load_cluster(&dir.path().join("cluster.yaml"), ValidateOptions::default())
            .unwrap();
    let cluster = validated.cluster;
    let plan = plan::plan(&cluster);
    let store = SecretStore::open(&dir.path().join("secrets"), Access::ReadWrite).unwrap();
    let now = OffsetDateTime::now_utc();
    let announced = pki::keys_to_make(&cluster, &plan, &store, now).unwrap();
    let made = std::sync::atomic::AtomicUsize::new(0);
    let count = || {
        made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    };
    pki::provision_reporting(&cluster, &plan, &store, now, &count).unwrap();
    let stored = snapshot(&dir.path().join("secrets"))
        .iter()
        .filter(|(_, bytes)| String::from_utf8_lossy(bytes).contains("PRIVATE KEY-----"))
        .count();
    let made = made.into_inner();
    assert!(stored > 10, "the whole master stores {stored} keys");
    assert_eq!(made, stored, "keys made vs keys stored");
    assert_eq!(announced, made, "keys announced vs keys made");
}
