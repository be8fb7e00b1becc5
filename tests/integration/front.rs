//! The node-local proxy with the real thing: the rendered nginx and haproxy configs pass
//! `nginx -t` / `haproxy -c`, and carry TLS from a client through to three `openssl
//! s_server` stand-ins that present the bundle's serving certificates, also while one
//! upstream is down.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use tempfile::TempDir;

use crate::harness::{KillOnDrop, kube_bundle, repo_root, s_client_get, wait_for};

struct Front {
    dir: TempDir,
    /// Its own 127.0.N.0/24 (distinct from the installer tests' range).
    subnet: u8,
    _subnet_lock: std::fs::File,
    /// Files of cp1's bundle by path under the node directory.
    files: BTreeMap<String, String>,
    /// The serving cert and key of each master, by name.
    serving: BTreeMap<String, (String, String)>,
}

impl Front {
    fn build(kind: &str) -> Self {
        let (subnet, subnet_lock) = crate::harness::claim_subnet(200..=250);
        let dir = tempfile::tempdir().unwrap();
        let masters: String = (1..=3)
            .map(|n| format!("  - {{ name: cp{n}, ip: 127.0.{subnet}.{n} }}\n"))
            .collect();
        let yaml = format!(
            "apiVersion: kube-bundle/v1alpha1\nkind: Cluster\nname: front\nkubernetesVersion: v1.36.1\n\
             masters:\n{masters}network: {{}}\netcd: {{ endpoints: [\"https://127.0.0.1:2379\"] }}\n\
             haFront: {{ kind: {kind}, listen: 127.0.{subnet}.100:8443 }}\n"
        );
        fs::write(dir.path().join("cluster.yaml"), yaml).unwrap();
        kube_bundle(dir.path(), &["build"]).code(0);
        let mut serving = BTreeMap::new();
        let mut files = BTreeMap::new();
        for n in 1..=3 {
            let node = format!("cp{n}");
            let tarball = dir.path().join(format!("bundles/front/{node}.tar.gz"));
            let (_, entries) = kube_bundle::verify::read_entries(&tarball).unwrap();
            let text = |path: &str| entries[path].text.clone().unwrap();
            serving.insert(
                node.clone(),
                (
                    text("rootfs/etc/kubernetes/cert/apiserver.crt"),
                    text("rootfs/etc/kubernetes/cert/apiserver.key"),
                ),
            );
            if n == 1 {
                files = entries
                    .into_iter()
                    .filter_map(|(p, e)| e.text.map(|t| (p, t)))
                    .collect();
            }
        }
        Self {
            dir,
            subnet,
            _subnet_lock: subnet_lock,
            files,
            serving,
        }
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    fn listen(&self) -> String {
        format!("127.0.{}.100:8443", self.subnet)
    }

    /// An `openssl s_server` on master n's address with its serving certificate.
    fn upstream(&self, n: u8) -> Child {
        let (cert, key) = &self.serving[&format!("cp{n}")];
        let cert = self.write(&format!("cp{n}.crt"), cert);
        let key = self.write(&format!("cp{n}.key"), key);
        let child = Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                &format!("127.0.{}.{n}:6443", self.subnet),
                "-cert",
                &cert,
                "-key",
                &key,
                "-www",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for(&format!("127.0.{}.{n}:6443", self.subnet));
        child
    }

    /// The config with only its pid file moved into the scratch dir (the listen address
    /// stays the rendered one); the rest is left alone, haproxy's has no pid line.
    fn with_local_pid(&self, config: &str) -> String {
        let prefix = self.dir.path().display();
        let lines: Vec<String> = config
            .lines()
            .map(|l| {
                if l.starts_with("pid ") {
                    format!("pid {prefix}/nginx.pid;")
                } else {
                    l.to_owned()
                }
            })
            .collect();
        lines.join("\n") + "\n"
    }

    /// Connects through the front and checks the apiserver certificate strictly.
    fn handshake(&self, verify: &[&str]) -> (bool, String) {
        self.write("ca.crt", &self.files["rootfs/etc/kubernetes/cert/ca.crt"]);
        let listen = self.listen();
        let mut args = vec![
            "-connect",
            &listen,
            "-CAfile",
            "ca.crt",
            "-verify_return_error",
        ];
        args.extend_from_slice(verify);
        let (ok, text) = s_client_get(self.dir.path(), &args);
        (
            ok && text.contains("Verify return code: 0 (ok)") && text.contains("HTTP/1.0 200"),
            text,
        )
    }
}

fn start_nginx(front: &Front) -> KillOnDrop {
    let prefix = front.dir.path().display().to_string();
    let config = front.with_local_pid(&front.files["rootfs/etc/kubernetes/kube-nginx.conf"]);
    let path = front.write("nginx.conf", &config);
    let child = Command::new("nginx")
        .args([
            "-e",
            &format!("{prefix}/nginx-error.log"),
            "-p",
            &prefix,
            "-c",
            &path,
            "-g",
            "daemon off; master_process off;",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx must be installed (.ci/run installs nginx and libnginx-mod-stream)");
    wait_for(&front.listen());
    KillOnDrop(child)
}

fn start_haproxy(front: &Front) -> KillOnDrop {
    let path = front.write(
        "haproxy.cfg",
        &front.files["rootfs/etc/kubernetes/kube-haproxy.cfg"],
    );
    let child = Command::new("haproxy")
        .args(["-db", "-f", &path])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy must be installed (.ci/run installs it)");
    wait_for(&front.listen());
    KillOnDrop(child)
}

fn proxies_tls_and_survives_a_lost_upstream(kind: &str, start: fn(&Front) -> KillOnDrop) {
    let front = Front::build(kind);
    let mut upstreams: Vec<Option<KillOnDrop>> = (1..=3)
        .map(|n| Some(KillOnDrop(front.upstream(n))))
        .collect();
    let names = ["-verify_hostname", "kubernetes.default.svc.cluster.local"];
    {
        let _proxy = start(&front);
        let (ok, text) = front.handshake(&names);
        assert!(ok, "{kind}: {text}");
        let (ok, text) = front.handshake(&["-verify_ip", "127.0.0.1"]);
        assert!(ok, "{kind}: {text}");
        let listen_ip = format!("127.0.{}.100", front.subnet);
        let (ok, text) = front.handshake(&["-verify_ip", &listen_ip]);
        assert!(ok, "{kind}: the listen address is a SAN: {text}");
    }
    // Each master stopped in turn, under a freshly started proxy (so an earlier outage's
    // passive-health state, max_fails/fail_timeout, does not carry over): new connections
    // still reach a live master.
    for (down, slot) in upstreams.iter_mut().enumerate() {
        *slot = None;
        let _proxy = start(&front);
        for _ in 0..3 {
            let (ok, text) = front.handshake(&names);
            let log =
                fs::read_to_string(front.dir.path().join("nginx-error.log")).unwrap_or_default();
            assert!(ok, "{kind} with cp{} down: {text}\n{log}", down + 1);
        }
        *slot = Some(KillOnDrop(front.upstream(down as u8 + 1)));
    }
}

#[test]
fn nginx_carries_tls_to_the_masters_and_survives_a_lost_upstream() {
    proxies_tls_and_survives_a_lost_upstream("nginx", start_nginx);
}

#[test]
fn haproxy_carries_tls_to_the_masters_and_survives_a_lost_upstream() {
    proxies_tls_and_survives_a_lost_upstream("haproxy", start_haproxy);
}

#[test]
fn every_rendered_front_config_passes_the_proxys_own_check() {
    for kind in ["nginx", "haproxy"] {
        let front = Front::build(kind);
        let prefix = front.dir.path().display().to_string();
        let (program, args, file) = if kind == "nginx" {
            let args = vec!["-e", "stderr", "-p", prefix.as_str(), "-t", "-c"];
            ("nginx", args, "rootfs/etc/kubernetes/kube-nginx.conf")
        } else {
            (
                "haproxy",
                vec!["-c", "-f"],
                "rootfs/etc/kubernetes/kube-haproxy.cfg",
            )
        };
        let text = front.with_local_pid(&front.files[file]);
        let path = front.write("front.conf", &text);
        let output = Command::new(program)
            .args(&args)
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        // The unit names the same file and the proxy's own check.
        let unit = front
            .files
            .iter()
            .find(|(p, _)| p.ends_with(&format!("kube-{kind}.service")))
            .unwrap()
            .1;
        assert!(unit.contains("ExecStartPre="), "{unit}");
        let kubeconfig = &front.files["rootfs/etc/kubernetes/admin.kubeconfig"];
        assert!(
            kubeconfig.contains(&format!("server: \"https://{}", front.listen())),
            "{kubeconfig}"
        );
    }
    // A broken config is caught: the check can fail.
    let front = Front::build("haproxy");
    let path = front.write(
        "bad.cfg",
        &front.files["rootfs/etc/kubernetes/kube-haproxy.cfg"].replace("mode tcp", "mode bogus"),
    );
    assert!(
        !Command::new("haproxy")
            .args(["-c", "-f", &path])
            .output()
            .unwrap()
            .status
            .success()
    );
    assert!(Path::new(&path).exists());
    let _ = repo_root();
}

#[test]
fn no_front_means_no_proxy_files_and_a_direct_kubeconfig() {
    let front = Front::build("none");
    assert!(
        !front
            .files
            .keys()
            .any(|p| p.contains("kube-nginx") || p.contains("kube-haproxy"))
    );
    let kubeconfig = &front.files["rootfs/etc/kubernetes/admin.kubeconfig"];
    assert!(
        kubeconfig.contains(&format!(
            "server: \"https://127.0.{}.1:6443\"",
            front.subnet
        )),
        "{kubeconfig}"
    );
}
