//! End to end, for real: three masters of Kubernetes v1.37.2 built by kube-bundle, each
//! installed by its own bundle's install.sh, in its own network and mount namespace, against
//! a real three-member etcd 3.7.3 with client-certificate auth.
//!
//! Topology (tests/e2e/netns.sh): a bridge in a namespace of its own, and per master a
//! network namespace with eth0 = 10.255.0.1N/24 on that bridge and its own loopback, plus a
//! private mount namespace in which /etc/kubernetes, /var/lib/kubernetes, /usr/local/bin and
//! /etc/systemd/system are bind-mounted from that master's root folder (the one install.sh
//! gets as --root). Every namespace is anonymous and held by a process: nothing global is
//! created, and the guards below SIGKILL everything inside them, on success and on panic
//! alike (the holders also sweep if this process dies).
//!
//! install.sh runs inside that namespace with the systemctl stand-in of tests/e2e/stubs,
//! which reads the installed unit and runs its ExecStart exactly as written (the real
//! binary, the real flags, the real absolute paths). install.sh waits for the real apiserver's
//! /healthz and POSTs its RBAC manifest to it.
//!
//! Binaries come from tests/e2e/build-kube.sh and tests/e2e/build-etcd.sh; when they are
//! missing the test fails and says so: it is never skipped. Every wait is a poll whose
//! deadline is only a hang guard; nothing here asserts how long anything takes.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{KillOnDrop, kube_bundle, repo_root};

const KUBE_VERSION: &str = "v1.37.2";
const ETCD_VERSION: &str = "v3.7.3";
const CLUSTER: &str = "e2e";
const MASTERS: [&str; 3] = ["m1", "m2", "m3"];
/// A hang guard for every poll, never reached on the success path.
const HANG_GUARD: Duration = Duration::from_secs(240);

fn cache() -> PathBuf {
    std::env::var_os("KUBE_BUNDLE_CACHE").map_or_else(
        || PathBuf::from(std::env::var("HOME").expect("HOME is set")).join(".cache/kube-bundle"),
        PathBuf::from,
    )
}

/// A cached binary that reports `version`, or a loud failure naming the script that builds
/// it. `etcdctl` says its version with `etcdctl version`, the others with `--version`.
#[track_caller]
fn cached_binary(relative: &str, version: &str, script: &str) -> PathBuf {
    let path = cache().join(relative);
    let flag = if relative.ends_with("etcdctl") {
        "version"
    } else {
        "--version"
    };
    let reported = Command::new(&path)
        .arg(flag)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        reported.contains(version.trim_start_matches('v')),
        "\n\n*** {} is missing, does not run or is not {version} ({:?}).\n*** Build it \
         first: {script}\n*** (the end-to-end test needs real binaries; it is never skipped)\n",
        path.display(),
        reported.lines().next().unwrap_or("no output")
    );
    path
}

#[track_caller]
fn require_tool(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "{tool} must be installed (.ci/run installs it)");
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `command`, and returns its stdout after asserting it succeeded.
#[track_caller]
fn ok(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}",
        output.status,
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Polls `attempt` until it returns Ok; the deadline is a hang guard, and the last error is
/// what a failure shows.
#[track_caller]
fn poll<T>(what: &str, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        match attempt() {
            Ok(value) => return value,
            Err(last) => {
                assert!(
                    Instant::now() < deadline,
                    "{what}: still failing after {HANG_GUARD:?} (hang guard); last: {last}"
                );
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
}

/// `/proc/PID/ns/net`, e.g. `net:[4026532281]`.
fn net_namespace(pid: &str) -> Option<String> {
    fs::read_link(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|l| l.display().to_string())
}

/// A namespace held by a tests/e2e/netns.sh process started under `unshare`.
struct Namespace {
    name: String,
    holder: Child,
    /// Its network namespace, for the sweep.
    net: String,
    stderr: PathBuf,
}

impl Namespace {
    fn new(name: &str, unshare: &[&str], script: &[&str], stderr: PathBuf) -> Self {
        let mut holder = Command::new("unshare")
            .args(unshare)
            .arg("--")
            .arg("bash")
            .arg(repo_root().join("tests/e2e/netns.sh"))
            .args(script)
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("unshare (util-linux) runs");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let pid = holder.id().to_string();
        let net = net_namespace(&pid);
        // Built before the check, so that a failed start is swept and reaped too.
        let namespace = Self {
            name: name.to_owned(),
            net: net.clone().unwrap_or_default(),
            holder,
            stderr,
        };
        assert!(
            line.trim() == "ready" && net.is_some() && net != net_namespace("self"),
            "namespace {name} did not come up (this test needs root: unshare, mount, ip link): {}",
            fs::read_to_string(&namespace.stderr).unwrap_or_default()
        );
        namespace
    }

    fn pid(&self) -> String {
        self.holder.id().to_string()
    }

    /// `program` run inside this namespace (network and mount).
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .args(["-t", &self.pid(), "--net", "--mount", "--"])
            .arg(program);
        command
    }

    /// SIGKILLs every process in this network namespace (the daemons started in it) until
    /// none is left.
    fn sweep(&self) {
        if self.net.is_empty() || Some(&self.net) == net_namespace("self").as_ref() {
            return;
        }
        let holder = self.pid();
        for round in 0..300 {
            let inside: Vec<String> = fs::read_dir("/proc")
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|p| p.parse::<u32>().is_ok() && *p != holder)
                .filter(|p| net_namespace(p).as_ref() == Some(&self.net))
                .collect();
            if inside.is_empty() {
                return;
            }
            for pid in &inside {
                let _ = Command::new("kill")
                    .args(["-KILL", pid])
                    .stderr(Stdio::null())
                    .status();
            }
            if round > 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        eprintln!("e2e: processes survived SIGKILL in namespace {}", self.name);
    }
}

impl Drop for Namespace {
    /// The holder first (on SIGTERM it SIGKILLs everything in its namespace and leaves; while
    /// it runs it keeps starting `sleep`s there), then whatever is left, by namespace.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while matches!(self.holder.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        self.sweep();
    }
}

/// One master: its namespace, install root, stand-in state and extracted bundle.
struct Master {
    name: &'static str,
    ip: String,
    dir: PathBuf,
    ns: Namespace,
}

impl Master {
    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }

    fn bundle(&self) -> PathBuf {
        self.dir.join("extracted").join(self.name)
    }

    /// The installed file at `path` (as the unit names it), read from the root.
    fn installed(&self, path: &str) -> PathBuf {
        self.root().join(path.trim_start_matches('/'))
    }

    fn log(&self, file: &str) -> String {
        fs::read_to_string(self.state().join(file)).unwrap_or_default()
    }

    /// install.sh as an operator would run it, inside this master's namespaces, with the
    /// stand-ins first on PATH.
    fn install(&self, args: &[&str]) -> Output {
        let stubs = repo_root().join("tests/e2e/stubs");
        self.ns
            .command("bash")
            .arg(self.bundle().join("install.sh"))
            .args(["--root", self.root().to_str().unwrap(), "--run-units"])
            .args(args)
            .env(
                "PATH",
                format!("{}:{}", stubs.display(), std::env::var("PATH").unwrap()),
            )
            .env("E2E_STATE", self.state())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn kubectl(&self, args: &[&str]) -> Command {
        let mut command = self.ns.command("kubectl");
        command
            .args(["--kubeconfig", "/etc/kubernetes/admin.kubeconfig"])
            .args(["--request-timeout", "10s"])
            .args(args);
        command
    }

    /// curl inside this master's namespace with its admin credentials, as install.sh probes.
    fn curl(&self, url: &str) -> Output {
        self.ns
            .command("curl")
            .args(["--silent", "--show-error", "--max-time", "10"])
            .args(["--cacert", "/etc/kubernetes/pki/ca.crt"])
            .args(["--cert", "/etc/kubernetes/pki/admin.crt"])
            .args(["--key", "/etc/kubernetes/pki/admin.key"])
            .arg(url)
            .output()
            .unwrap()
    }

    fn etcdctl(&self, etcdctl: &Path, endpoints: &str, args: &[&str]) -> Command {
        let mut command = self.ns.command(etcdctl);
        command
            .args(["--endpoints", endpoints])
            .args(["--cacert", "/etc/kubernetes/pki/etcd/ca.crt"])
            .args(["--cert", "/etc/kubernetes/pki/apiserver-etcd-client.crt"])
            .args(["--key", "/etc/kubernetes/pki/apiserver-etcd-client.key"])
            .args(["--dial-timeout", "10s", "--command-timeout", "30s"])
            .args(args);
        command
    }

    fn apiserver_pid(&self) -> String {
        self.log("kube-apiserver.service.pid").trim().to_owned()
    }
}

/// Drop order is field order: etcd first, then every namespace (sweeping what runs inside),
/// then the temp folder.
struct Cluster {
    etcd: Vec<KillOnDrop>,
    masters: Vec<Master>,
    switch: Option<Namespace>,
    dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for master in &self.masters {
                for file in [
                    "systemctl.log",
                    "kube-apiserver.service.log",
                    "kube-nginx.service.log",
                    "etcd.log",
                ] {
                    let log = master.log(file);
                    let tail: Vec<&str> = log.lines().rev().take(25).collect();
                    eprintln!("--- {} {file} (last lines)", master.name);
                    for line in tail.iter().rev() {
                        eprintln!("{line}");
                    }
                }
            }
        }
        self.etcd.clear();
        self.masters.clear();
        self.switch = None;
    }
}

/// install.sh's `check  NAME   RESULT` line for NAME, trimmed.
#[track_caller]
fn check_line<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(&format!("check  {name} ")))
        .unwrap_or_else(|| panic!("install.sh printed no check {name:?}:\n{out}"))
        .trim()
}

/// The words of the unit's ExecStart=, continuation lines joined, as systemd splits them
/// (the unit has no quotes; the stand-in refuses one that has).
fn exec_start(unit: &str) -> Vec<String> {
    let joined = unit.replace("\\\n", " ");
    let line = joined
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the unit has ExecStart=");
    line.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn three_real_masters_installed_by_install_sh_serve_a_real_cluster() {
    let started = Instant::now();
    let apiserver = cached_binary(
        &format!("kube/{KUBE_VERSION}/kube-apiserver"),
        KUBE_VERSION,
        &format!("tests/e2e/build-kube.sh {KUBE_VERSION}"),
    );
    let etcd = cached_binary(
        &format!("etcd/{ETCD_VERSION}/etcd"),
        ETCD_VERSION,
        &format!("tests/e2e/build-etcd.sh {ETCD_VERSION}"),
    );
    let etcdctl = cached_binary(
        &format!("etcd/{ETCD_VERSION}/etcdctl"),
        ETCD_VERSION,
        &format!("tests/e2e/build-etcd.sh {ETCD_VERSION}"),
    );
    for tool in [
        "unshare", "nsenter", "ip", "mount", "openssl", "curl", "kubectl", "nginx", "tar",
    ] {
        require_tool(tool);
    }
    assert_eq!(
        ok(Command::new("id").arg("-u")).trim(),
        "0",
        "the end-to-end test needs root (namespaces, mounts, veth): CI runs as root"
    );

    let mut cluster = Cluster {
        etcd: Vec::new(),
        masters: Vec::new(),
        switch: None,
        dir: tempfile::tempdir().unwrap(),
    };
    let dir = cluster.dir.path().to_owned();

    // ---- cluster.yaml and the bundles
    let project = dir.join("project");
    fs::create_dir_all(&project).unwrap();
    let ip = |n: usize| format!("10.255.0.1{n}");
    let masters: String = (1..=3)
        .map(|n| format!("  - {{ name: m{n}, ip: {} }}\n", ip(n)))
        .collect();
    let endpoints: String = (1..=3)
        .map(|n| format!("    - https://{}:2379\n", ip(n)))
        .collect();
    let yaml = [
        &format!("apiVersion: kube-bundle/v1alpha1\nkind: Cluster\nname: {CLUSTER}\n"),
        &format!("kubernetesVersion: {KUBE_VERSION}\n"),
        &format!("masters:\n{masters}"),
        "network: { serviceCIDR: 10.96.0.0/12 }\n",
        &format!("etcd:\n  endpoints:\n{endpoints}  ca: separate\n"),
        "encryption: { provider: secretbox }\n",
        "paths: { binDir: /usr/local/bin, certDir: /etc/kubernetes/pki, configDir: /etc/kubernetes, dataDir: /var/lib/kubernetes }\n",
        "haFront: { kind: nginx, listen: 127.0.0.1:8443 }\n",
        &format!("binaries: {{ kubeApiserver: {} }}\n", apiserver.display()),
    ]
    .concat();
    fs::write(project.join("cluster.yaml"), yaml).unwrap();
    let build = kube_bundle(&project, &["build", "--allow-untested-version"]);
    build.code(0);
    let fingerprint = build.signing_fingerprint();
    let bundles = project.join("bundles").join(CLUSTER);
    // The fingerprint as INSTALL.md has the operator compute it, with stock openssl.
    let digest = ok(Command::new("sh")
        .args([
            "-c",
            "openssl pkey -pubin -in signing.pub -outform DER | sha256sum",
        ])
        .current_dir(&bundles));
    assert!(
        digest.starts_with(&fingerprint),
        "{digest} vs {fingerprint}"
    );
    for name in MASTERS {
        let tarball = bundles.join(format!("{name}.tar.gz"));
        kube_bundle(
            &project,
            &[
                "verify",
                tarball.to_str().unwrap(),
                "--fingerprint",
                &fingerprint,
            ],
        )
        .code(0)
        .stdout_has("OK");
    }
    eprintln!("e2e: bundles built and verified at {:?}", started.elapsed());

    // ---- the network: a switch, three masters
    cluster.switch = Some(Namespace::new(
        "switch",
        &["--net"],
        &["switch"],
        dir.join("switch.err"),
    ));
    for (index, name) in MASTERS.iter().enumerate() {
        let n = index + 1;
        let master_dir = dir.join(name);
        for sub in ["root", "scratch", "state", "extracted", "etcd-data"] {
            fs::create_dir_all(master_dir.join(sub)).unwrap();
        }
        let ns = Namespace::new(
            name,
            &["--mount", "--net", "--propagation", "private"],
            &[
                "master",
                master_dir.join("root").to_str().unwrap(),
                master_dir.join("scratch").to_str().unwrap(),
            ],
            master_dir.join("holder.err"),
        );
        ok(Command::new("bash")
            .arg(repo_root().join("tests/e2e/netns.sh"))
            .args(["plug", &cluster.switch.as_ref().unwrap().pid(), &ns.pid()])
            .arg(n.to_string())
            .arg(format!("{}/24", ip(n))));
        ok(Command::new("tar")
            .arg("xzf")
            .arg(bundles.join(format!("{name}.tar.gz")))
            .current_dir(master_dir.join("extracted")));
        cluster.masters.push(Master {
            name,
            ip: ip(n),
            dir: master_dir,
            ns,
        });
    }

    // ---- etcd: one member per master namespace, serving certificates from the etcd CA in
    // the secrets folder (as pki.rs does for Debian's etcd), client-certificate auth.
    let secrets = project.join("secrets").join(CLUSTER);
    let openssl = |args: &[&str]| {
        ok(Command::new("openssl").args(args).current_dir(&dir));
    };
    let etcd_ca = secrets.join("etcd-ca.pem");
    openssl(&[
        "pkey",
        "-in",
        etcd_ca.to_str().unwrap(),
        "-out",
        "etcd-ca.key",
    ]);
    openssl(&[
        "x509",
        "-in",
        etcd_ca.to_str().unwrap(),
        "-out",
        "etcd-ca.crt",
    ]);
    let initial_cluster: Vec<String> = cluster
        .masters
        .iter()
        .map(|m| format!("{}=http://{}:2380", m.name, m.ip))
        .collect();
    for (serial, master) in cluster.masters.iter().enumerate() {
        let name = master.name;
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}/etcd.key"),
            "-subj",
            &format!("/CN=etcd-{name}"),
            "-out",
            &format!("{name}/etcd.csr"),
        ]);
        fs::write(
            master.dir.join("etcd.ext"),
            format!(
                "subjectAltName=IP:{},IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
                master.ip
            ),
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}/etcd.csr"),
            "-CA",
            "etcd-ca.crt",
            "-CAkey",
            "etcd-ca.key",
            "-set_serial",
            &(serial + 100).to_string(),
            "-days",
            "1",
            "-extfile",
            &format!("{name}/etcd.ext"),
            "-out",
            &format!("{name}/etcd.crt"),
        ]);
        let client = format!("https://{}:2379", master.ip);
        let peer = format!("http://{}:2380", master.ip);
        let child = master
            .ns
            .command(&etcd)
            .args(["--name", name])
            .arg("--data-dir")
            .arg(master.dir.join("etcd-data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial_cluster.join(",")])
            .args(["--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "kube-bundle-e2e"])
            .arg("--cert-file")
            .arg(master.dir.join("etcd.crt"))
            .arg("--key-file")
            .arg(master.dir.join("etcd.key"))
            .arg("--trusted-ca-file")
            .arg(dir.join("etcd-ca.crt"))
            .arg("--client-cert-auth")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(master.state().join("etcd.log")).unwrap())
            .spawn()
            .unwrap();
        cluster.etcd.push(KillOnDrop(child));
    }
    // The apiserver's own etcd client certificate, as the bundle ships it (not installed
    // yet: read from the extracted bundle through the namespace's view of the host).
    let all_etcd: Vec<String> = cluster
        .masters
        .iter()
        .map(|m| format!("https://{}:2379", m.ip))
        .collect();
    let all_etcd = all_etcd.join(",");
    {
        let m1 = &cluster.masters[0];
        let pki = m1.bundle().join("rootfs/etc/kubernetes/pki");
        poll(
            "etcd health with the bundle's apiserver-etcd-client cert",
            || {
                let output = m1
                    .ns
                    .command(&etcdctl)
                    .args(["--endpoints", &all_etcd])
                    .arg("--cacert")
                    .arg(pki.join("etcd/ca.crt"))
                    .arg("--cert")
                    .arg(pki.join("apiserver-etcd-client.crt"))
                    .arg("--key")
                    .arg(pki.join("apiserver-etcd-client.key"))
                    .args(["--dial-timeout", "5s", "--command-timeout", "10s"])
                    .args(["endpoint", "health"])
                    .output()
                    .unwrap();
                if output.status.success() {
                    Ok(())
                } else {
                    Err(text(&output))
                }
            },
        );
    }
    eprintln!("e2e: etcd cluster healthy at {:?}", started.elapsed());

    // ---- install.sh on each master in turn, as INSTALL.md says
    for (index, master) in cluster.masters.iter().enumerate() {
        let output = master.install(&["--force", "--timeout", "300"]);
        let out = text(&output);
        assert!(
            output.status.success(),
            "install.sh on {} failed:\n{out}\n--- kube-apiserver (last 40 lines):\n{}",
            master.name,
            master
                .log("kube-apiserver.service.log")
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
        let healthz = format!("healthz https://{}:6443/healthz", master.ip);
        let version = format!("ok (Kubernetes {KUBE_VERSION})");
        for (check, wanted) in [
            ("kube-apiserver binary", version.as_str()),
            (healthz.as_str(), "ok"),
            (
                "healthz through the front https://127.0.0.1:8443/healthz",
                "ok",
            ),
            // The first master creates the RBAC binding for real; the others find it.
            (
                "manifest kube-apiserver-kubelet-apis.yaml",
                if index == 0 {
                    "created"
                } else {
                    "already exists"
                },
            ),
        ] {
            let line = check_line(&out, check);
            assert!(
                line.ends_with(wanted),
                "{}: {line:?} is not {wanted:?}:\n{out}",
                master.name
            );
        }
        // The node check passes on its own merits: eth0 carries the master's address.
        let node = check_line(&out, &format!("this is node {}", master.name));
        assert!(node.contains(" ok ("), "{node}");
        assert!(out.contains("restarting kube-apiserver.service"), "{out}");
        // What runs is exactly the installed unit's ExecStart: same program, same words.
        let unit =
            fs::read_to_string(master.installed("/etc/systemd/system/kube-apiserver.service"))
                .unwrap();
        let cmdline = fs::read(format!("/proc/{}/cmdline", master.apiserver_pid())).unwrap();
        let running: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|w| !w.is_empty())
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        assert_eq!(running, exec_start(&unit), "{}", master.name);
        eprintln!(
            "e2e: {} installed and healthy at {:?}",
            master.name,
            started.elapsed()
        );
    }
    let [m1, m2, m3] = &cluster.masters[..] else {
        unreachable!()
    };

    // ---- the seed guide's checks, for real
    // /healthz on every master, each reached over the bridge from m1's namespace.
    for master in &cluster.masters {
        let output = m1.curl(&format!("https://{}:6443/healthz", master.ip));
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "ok",
            "{}: {}",
            master.name,
            text(&output)
        );
    }
    // And anonymous requests are refused (--anonymous-auth=false), as the front sees them.
    let anonymous = ok(m2.ns.command("curl").args([
        "--silent",
        "--cacert",
        "/etc/kubernetes/pki/ca.crt",
        "--write-out",
        "%{http_code}",
        "--output",
        "/dev/null",
        "https://10.255.0.12:6443/healthz",
    ]));
    assert_eq!(anonymous, "401");
    assert_eq!(ok(&mut m1.kubectl(&["get", "--raw", "/healthz"])), "ok");
    let info = ok(&mut m1.kubectl(&["cluster-info"]));
    assert!(
        info.contains("is running at") && info.contains("https://127.0.0.1:8443"),
        "{info}"
    );
    let service_ip = ok(&mut m1.kubectl(&[
        "get",
        "service",
        "kubernetes",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]));
    assert_eq!(service_ip, "10.96.0.1");
    // Every master advertises its own address in the kubernetes endpoints (lease reconciler).
    poll("the kubernetes endpoints list all three masters", || {
        let output = m1
            .kubectl(&[
                "get",
                "endpoints",
                "kubernetes",
                "-o",
                "jsonpath={.subsets[*].addresses[*].ip}",
            ])
            .output()
            .unwrap();
        let mut ips: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        ips.sort();
        if ips == ["10.255.0.11", "10.255.0.12", "10.255.0.13"] {
            Ok(())
        } else {
            Err(format!("{ips:?} {}", text(&output)))
        }
    });
    let keys = ok(&mut m2.etcdctl(
        &etcdctl,
        &all_etcd,
        &["get", "/registry/", "--prefix", "--keys-only"],
    ));
    let keys: Vec<&str> = keys.lines().filter(|l| !l.is_empty()).collect();
    assert!(
        keys.iter().all(|k| k.starts_with("/registry/"))
            && keys.contains(&"/registry/services/specs/default/kubernetes")
            && keys.contains(&"/registry/clusterrolebindings/kube-apiserver:kubelet-apis"),
        "{keys:?}"
    );
    // A Secret, written through the front, is encrypted at rest with secretbox.
    ok(&mut m1.kubectl(&[
        "create",
        "secret",
        "generic",
        "e2e-secret",
        "--from-literal=password=correct-horse-battery-staple",
    ]));
    let stored = m3
        .etcdctl(
            &etcdctl,
            &all_etcd,
            &[
                "get",
                "/registry/secrets/default/e2e-secret",
                "--print-value-only",
            ],
        )
        .output()
        .unwrap();
    assert!(stored.status.success(), "{}", text(&stored));
    assert!(
        stored.stdout.starts_with(b"k8s:enc:secretbox:v1:"),
        "stored as {:?}",
        String::from_utf8_lossy(&stored.stdout[..stored.stdout.len().min(40)])
    );
    assert!(
        !String::from_utf8_lossy(&stored.stdout).contains("correct-horse"),
        "the Secret is in etcd in clear"
    );
    let read_back = ok(&mut m3.kubectl(&[
        "get",
        "secret",
        "e2e-secret",
        "-o",
        "jsonpath={.data.password}",
    ]));
    assert_eq!(read_back, "Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5LXN0YXBsZQ==");
    // The kubelet-API RBAC the bundle's manifest grants, for the CN the bundle issued.
    let subject = ok(Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
        .arg(m1.installed("/etc/kubernetes/pki/apiserver-kubelet-client.crt")));
    let cn = subject
        .trim()
        .trim_start_matches("subject=")
        .split(',')
        .find_map(|part| part.strip_prefix("CN="))
        .unwrap_or_else(|| panic!("no CN in {subject}"))
        .to_owned();
    let can_i = |who: &str| {
        let output = m2
            .kubectl(&[
                "auth",
                "can-i",
                "create",
                "nodes",
                "--subresource=proxy",
                &format!("--as={who}"),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    assert_eq!(can_i(&cn), "yes", "{cn} may not reach the kubelet API");
    assert_eq!(
        can_i("someone-else"),
        "no",
        "RBAC lets anyone reach kubelets"
    );
    // The stand-in's view agrees with install.sh's own status checks.
    let status = m2.install(&["--status"]);
    assert!(status.status.success(), "{}", text(&status));
    eprintln!("e2e: cluster checks passed at {:?}", started.elapsed());

    // ---- one master's apiserver dies: the others serve, and every front routes around it
    let dead = m1.apiserver_pid();
    ok(Command::new("kill").args(["-KILL", &dead]));
    poll("m1's apiserver is gone", || {
        let output = m2.curl("https://10.255.0.11:6443/healthz");
        if output.status.success() {
            Err(text(&output))
        } else {
            Ok(())
        }
    });
    let status = m1.install(&["--status"]);
    assert!(
        !status.status.success() && text(&status).contains("FAILED"),
        "{}",
        text(&status)
    );
    for master in [m2, m3] {
        let output = m3.curl(&format!("https://{}:6443/healthz", master.ip));
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "ok",
            "{}: {}",
            master.name,
            text(&output)
        );
    }
    for master in [m1, m2, m3] {
        poll(
            &format!("kubectl through {}'s front after m1 died", master.name),
            || {
                let output = master
                    .kubectl(&[
                        "get",
                        "secret",
                        "e2e-secret",
                        "-o",
                        "jsonpath={.data.password}",
                    ])
                    .output()
                    .unwrap();
                if output.status.success()
                    && output.stdout == b"Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5LXN0YXBsZQ=="
                {
                    Ok(())
                } else {
                    Err(text(&output))
                }
            },
        );
    }
    ok(&mut m2.kubectl(&[
        "create",
        "configmap",
        "written-while-m1-is-down",
        "--from-literal=k=v",
    ]));
    eprintln!(
        "e2e: with m1 down, m2 and m3 serve; done at {:?}",
        started.elapsed()
    );
}
