//! install.sh in a sandbox root, never touching the real /: stub systemctl, hostname,
//! journalctl (tests/stubs) first on PATH, and a real TLS endpoint standing in for the
//! apiserver on the node's 127.0.x.y address, serving the certificates install.sh put in
//! place and requiring the bundle's admin client certificate.

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use crate::harness::{kube_bundle, repo_root};

/// Not an install.sh option: tells the harness to leave out --run-units.
const NO_UNITS: &str = "(no --run-units)";

struct Sandbox {
    dir: TempDir,
    /// Its own 127.0.N.0/24, so tests (and test runs) can go in parallel.
    subnet: u8,
    _subnet_lock: fs::File,
    /// Three TCP listeners standing in for etcd members (the pre-flight dials them).
    _etcd: Vec<TcpListener>,
}

impl Sandbox {
    fn new() -> Self {
        let (subnet, subnet_lock) = crate::harness::claim_subnet(10..=199);
        let dir = tempfile::tempdir().unwrap();
        let etcd: Vec<TcpListener> = (0..3)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let endpoints: Vec<String> = etcd
            .iter()
            .map(|l| {
                format!(
                    "    - https://127.0.0.1:{}\n",
                    l.local_addr().unwrap().port()
                )
            })
            .collect();
        let masters: String = (1..=3)
            .map(|n| format!("  - {{ name: cp{n}, ip: 127.0.{subnet}.{n} }}\n"))
            .collect();
        let yaml = [
            "apiVersion: kube-bundle/v1alpha1\nkind: Cluster\nname: sandbox\nkubernetesVersion: v1.36.1\n",
            &format!("masters:\n{masters}"),
            "network: { serviceCIDR: 10.96.0.0/12 }\n",
            &format!("etcd:\n  endpoints:\n{}  ca: separate\n", endpoints.concat()),
            "paths: { binDir: /usr/local/bin, certDir: /etc/kubernetes/pki, configDir: /etc/kubernetes, dataDir: /var/lib/kubernetes }\n",
            "apiserver:\n  extraArgs: {}\n",
            &format!("haFront: {{ kind: nginx, listen: 127.0.{subnet}.100:8443 }}\n"),
        ]
        .concat();
        fs::write(dir.path().join("cluster.yaml"), yaml).unwrap();
        let sandbox = Self {
            dir,
            subnet,
            _subnet_lock: subnet_lock,
            _etcd: etcd,
        };
        fs::create_dir_all(sandbox.stub_dir()).unwrap();
        // The node's own kube-apiserver binary, which the pre-flight asks for its version.
        let binary = sandbox.root().join("usr/local/bin/kube-apiserver");
        fs::create_dir_all(binary.parent().unwrap()).unwrap();
        fs::write(&binary, "#!/bin/sh\necho 'Kubernetes v1.36.1'\n").unwrap();
        fs::set_permissions(&binary, fs::Permissions::from_mode(0o755)).unwrap();
        sandbox
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn root(&self) -> PathBuf {
        self.path().join("root")
    }

    fn stub_dir(&self) -> PathBuf {
        self.path().join("stub")
    }

    fn tmp_dir(&self) -> PathBuf {
        let dir = self.path().join("tmp");
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// install.sh's private copies of the bundle (with keys) still in the temp folder.
    fn private_copies(&self) -> Vec<String> {
        fs::read_dir(self.tmp_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("kube-bundle."))
            .collect()
    }

    fn node_ip(&self) -> String {
        format!("127.0.{}.1", self.subnet)
    }

    /// Builds the bundles and extracts cp1's with stock tar into `name/`.
    fn build_and_extract(&self, name: &str) -> PathBuf {
        let build = kube_bundle(self.path(), &["build"]);
        build.code(0);
        self.extract("cp1", name)
    }

    /// Extracts `node`'s bundle with stock tar into `name/`.
    fn extract(&self, node: &str, name: &str) -> PathBuf {
        let into = self.path().join(name);
        fs::create_dir_all(&into).unwrap();
        let tarball = self.path().join(format!("bundles/sandbox/{node}.tar.gz"));
        let status = Command::new("tar")
            .arg("xzf")
            .arg(tarball)
            .current_dir(&into)
            .status()
            .unwrap();
        assert!(status.success());
        into.join(node)
    }

    /// Adds client w1 (127.0.N.21), which gets a front-only bundle.
    fn add_client(&self) {
        crate::harness::add_client(self.path(), &format!("127.0.{}.21", self.subnet));
    }

    /// Turns the controller manager and the scheduler on, with stand-in programs where
    /// the bundle expects them on the node.
    fn enable_whole_master(&self) {
        let config = self.path().join("cluster.yaml");
        let mut text = fs::read_to_string(&config).unwrap();
        text.push_str("controllerManager: {}\nscheduler: {}\n");
        fs::write(&config, text).unwrap();
        for program in ["kube-controller-manager", "kube-scheduler"] {
            let binary = self.root().join("usr/local/bin").join(program);
            fs::create_dir_all(binary.parent().unwrap()).unwrap();
            fs::write(&binary, "#!/bin/sh\nexit 0\n").unwrap();
            fs::set_permissions(&binary, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    fn edit(&self, old: &str, new: &str) {
        crate::harness::edit_config(self.path(), old, new);
    }

    fn install(&self, bundle: &Path, args: &[&str]) -> Output {
        self.install_with(bundle, args, &[])
    }

    fn install_with(&self, bundle: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.install_on(bundle, &self.root(), "cp1", args, env)
    }

    /// install.sh of `bundle` into `root`, on a host called `hostname`.
    fn install_on(
        &self,
        bundle: &Path,
        root: &Path,
        hostname: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Output {
        let stubs = repo_root().join("tests/stubs");
        let path = format!("{}:{}", stubs.display(), std::env::var("PATH").unwrap());
        let mut command = Command::new("bash");
        command
            .arg(bundle.join("install.sh"))
            // A generous health deadline: the success path returns as soon as the unit is
            // healthy. install.sh takes the last --timeout, so a test's own (a short one,
            // where it expects the unit never to turn healthy) wins.
            .args(["--root", root.to_str().unwrap(), "--timeout", "120"])
            // A sandbox root never drives units, unless --run-units says PATH holds
            // stand-ins (ours, first on PATH); a test of that default passes NO_UNITS.
            .args(if args.contains(&NO_UNITS) {
                &[][..]
            } else {
                &["--run-units"][..]
            })
            .args(args.iter().filter(|a| **a != NO_UNITS))
            .env("PATH", path)
            .env("STUB_DIR", self.stub_dir())
            // install.sh's private copies land here, where a test can look for leftovers.
            .env("TMPDIR", self.tmp_dir())
            .env("STUB_ROOT", root)
            .env("STUB_NODE_IP", self.node_ip())
            .env("STUB_HOSTNAME", hostname)
            .env("STUB_ADDRESSES", "192.0.2.10");
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().unwrap()
    }

    fn systemctl_log(&self) -> Vec<String> {
        fs::read_to_string(self.stub_dir().join("systemctl.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn clear_logs(&self) {
        let _ = fs::remove_file(self.stub_dir().join("systemctl.log"));
        let _ = fs::remove_file(self.stub_dir().join("requests.log"));
    }

    /// Every file under the sandbox root except kube-bundle's own state, with mode and uid.
    fn tree(&self) -> BTreeMap<String, (u32, u32, Vec<u8>)> {
        let mut files = BTreeMap::new();
        let root = self.root();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let relative = path.strip_prefix(&root).unwrap().display().to_string();
                if relative.starts_with("var/lib/kube-bundle") {
                    continue;
                }
                let meta = fs::symlink_metadata(&path).unwrap();
                if meta.is_dir() {
                    stack.push(path);
                } else {
                    files.insert(
                        relative,
                        (meta.mode() & 0o7777, meta.uid(), fs::read(&path).unwrap()),
                    );
                }
            }
        }
        files
    }

    /// Stops every stand-in daemon and waits until it is gone, so the next run cannot
    /// mistake a dying process for a running unit.
    fn stop_units(&self) {
        for name in [
            "apiserver.pid",
            "nginx.pid",
            "kube-controller-manager.service.pid",
            "kube-scheduler.service.pid",
        ] {
            self.stop_pid(name);
        }
    }

    /// SIGTERM, up to 5 s of grace, then SIGKILL to the process and its group (nginx's
    /// workers), and waits until nothing of it runs. The 60 s limit is a hang guard, never
    /// reached on the success path: past it the test fails, as a survivor would hold the
    /// address the next run binds.
    fn stop_pid(&self, name: &str) {
        use std::time::{Duration, Instant};
        let pidfile = self.stub_dir().join(name);
        if let Ok(pid) = fs::read_to_string(&pidfile) {
            let pid = pid.trim().to_owned();
            if let Ok(number) = pid.parse::<u32>() {
                let signal = |args: &[&str]| {
                    let _ = Command::new("kill")
                        .args(args)
                        .stderr(std::process::Stdio::null())
                        .status();
                };
                signal(&[&pid]);
                let grace = Instant::now() + Duration::from_secs(5);
                while group_alive(number) && Instant::now() < grace {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if group_alive(number) {
                    signal(&["-KILL", "--", &format!("-{pid}")]);
                    signal(&["-KILL", &pid]);
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while group_alive(number) {
                        assert!(
                            Instant::now() < deadline,
                            "{name}: pid {pid} still runs 60 s after SIGKILL"
                        );
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
            let _ = fs::remove_file(&pidfile);
        }
    }
}

/// Whether `pid`, or a process in the group it leads, still runs. Zombies count as gone:
/// they hold no socket, and the daemons' adoptive parent may never reap them.
fn group_alive(pid: u32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Ok(this) = entry.file_name().to_string_lossy().parse::<u32>() else {
            return false;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // After the command name in parentheses: state, ppid, pgrp.
        let fields: Vec<&str> = stat
            .rsplit_once(") ")
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        fields.first().is_some_and(|state| *state != "Z")
            && (this == pid || fields.get(2) == Some(&pid.to_string().as_str()))
    })
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop_units();
    }
}

fn stdout(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[track_caller]
fn succeeded(output: &Output) -> String {
    let text = stdout(output);
    assert!(output.status.success(), "install.sh failed:\n{text}");
    text
}

/// Every rootfs file of the bundle is installed with its content, mode and root owner,
/// and nothing else is (besides the pre-existing binary).
#[track_caller]
fn assert_installed(sandbox: &Sandbox, bundle: &Path) {
    let tree = sandbox.tree();
    let mut checked = 0;
    for line in fs::read_to_string(bundle.join("SHA256SUMS"))
        .unwrap()
        .lines()
    {
        let Some(path) = line
            .split_once("  ")
            .and_then(|(_, p)| p.strip_prefix("rootfs/"))
        else {
            continue;
        };
        let source = bundle.join("rootfs").join(path);
        let (mode, uid, content) = tree
            .get(path)
            .unwrap_or_else(|| panic!("{path} not installed"));
        assert_eq!(content, &fs::read(&source).unwrap(), "{path} content");
        let wanted = fs::metadata(&source).unwrap().mode() & 0o7777;
        assert_eq!(*mode, wanted, "{path} mode");
        if nix_is_root() {
            assert_eq!(*uid, 0, "{path} owner");
        }
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} files checked");
    assert_eq!(
        tree.len(),
        checked + 1,
        "unexpected files: {:?}",
        tree.keys().collect::<Vec<_>>()
    );
}

#[test]
fn first_install_puts_every_file_in_place_and_starts_the_unit() {
    let sandbox = Sandbox::new();
    let bundle = sandbox.build_and_extract("b1");
    let text = succeeded(&sandbox.install(&bundle, &[]));
    assert_installed(&sandbox, &bundle);
    let tree = sandbox.tree();
    assert_eq!(tree["etc/kubernetes/pki/apiserver.key"].0, 0o600);
    assert_eq!(tree["etc/systemd/system/kube-apiserver.service"].0, 0o644);
    assert!(
        sandbox
            .root()
            .join("var/lib/kubernetes/kube-apiserver")
            .is_dir(),
        "working directory created"
    );
    let log = sandbox.systemctl_log();
    assert_eq!(
        log,
        [
            // Which units ran before: a rollback restarts exactly those.
            "is-active --quiet kube-apiserver.service",
            "is-active --quiet kube-nginx.service",
            "daemon-reload",
            "enable --quiet kube-apiserver.service",
            "restart kube-apiserver.service",
            "enable --quiet kube-nginx.service",
            "restart kube-nginx.service",
        ]
    );
    assert!(
        text.contains("healthz through the front https://127.0."),
        "checked through a real nginx: {text}"
    );
    assert!(text.contains("healthz"), "{text}");
    let requests = fs::read_to_string(sandbox.stub_dir().join("requests.log")).unwrap();
    // From 1.29 the admin credential's group gets cluster-admin only from a binding these
    // manifests create, so install.sh applies them as its own user in system:masters,
    // through the front-proxy client certificate.
    for binding in ["kube-apiserver:kubelet-apis", "kube-bundle:cluster-admins"] {
        let wanted = format!(
            "POST /apis/rbac.authorization.k8s.io/v1/clusterrolebindings {binding} as kube-bundle:installer (system:masters)"
        );
        assert!(requests.lines().any(|l| l == wanted), "{requests}");
    }
    let installed =
        fs::read_to_string(sandbox.root().join("var/lib/kube-bundle/installed")).unwrap();
    assert!(
        installed.starts_with("cp1-"),
        "bundle id recorded: {installed}"
    );
}

fn nix_is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

#[test]
fn a_second_run_changes_nothing_and_restarts_nothing() {
    let sandbox = Sandbox::new();
    let bundle = sandbox.build_and_extract("b1");
    succeeded(&sandbox.install(&bundle, &[]));
    let before = sandbox.tree();
    sandbox.clear_logs();
    let text = succeeded(&sandbox.install(&bundle, &[]));
    assert_eq!(sandbox.tree(), before);
    assert!(
        !text.contains("kube-bundle: new ") && !text.contains("kube-bundle: changed "),
        "{text}"
    );
    let log = sandbox.systemctl_log();
    assert!(
        log.iter()
            .all(|c| !c.starts_with("restart") && !c.starts_with("start") && c != "daemon-reload"),
        "{log:?}"
    );
    assert!(
        text.contains("already exists"),
        "the RBAC binding exists: {text}"
    );
}

#[test]
fn one_changed_flag_restarts_once_and_backs_up_the_old_unit() {
    let sandbox = Sandbox::new();
    let first = sandbox.build_and_extract("b1");
    succeeded(&sandbox.install(&first, &[]));
    let old_unit = fs::read(
        sandbox
            .root()
            .join("etc/systemd/system/kube-apiserver.service"),
    )
    .unwrap();
    sandbox.edit("extraArgs: {}", "extraArgs: { event-ttl: 2h }");
    let second = sandbox.build_and_extract("b2");
    sandbox.clear_logs();
    let text = succeeded(&sandbox.install(&second, &[]));
    let changed: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("kube-bundle: changed"))
        .collect();
    assert_eq!(
        changed,
        ["kube-bundle: changed   /etc/systemd/system/kube-apiserver.service"],
        "{text}"
    );
    let log = sandbox.systemctl_log();
    let restarts: Vec<&String> = log.iter().filter(|c| c.starts_with("restart")).collect();
    assert_eq!(
        restarts,
        ["restart kube-apiserver.service"],
        "only the apiserver restarts: {log:?}"
    );
    assert!(log.contains(&"daemon-reload".to_owned()));
    let id = fs::read_to_string(sandbox.root().join("var/lib/kube-bundle/installed")).unwrap();
    let backup = sandbox.root().join(format!(
        "var/lib/kube-bundle/backups/{}/files/etc/systemd/system/kube-apiserver.service",
        id.trim()
    ));
    assert_eq!(fs::read(backup).unwrap(), old_unit);
}

#[test]
fn a_changed_master_list_restarts_only_the_front() {
    let sandbox = Sandbox::new();
    let first = sandbox.build_and_extract("b1");
    succeeded(&sandbox.install(&first, &[]));
    sandbox.edit(
        &format!("name: cp3, ip: 127.0.{}.3", sandbox.subnet),
        &format!("name: cp3, ip: 127.0.{}.33", sandbox.subnet),
    );
    let second = sandbox.build_and_extract("b2");
    sandbox.clear_logs();
    let text = succeeded(&sandbox.install(&second, &[]));
    let changed: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("kube-bundle: changed"))
        .collect();
    assert_eq!(
        changed,
        ["kube-bundle: changed   /etc/kubernetes/kube-nginx.conf"],
        "{text}"
    );
    let restarts: Vec<String> = sandbox
        .systemctl_log()
        .into_iter()
        .filter(|c| c.starts_with("restart"))
        .collect();
    assert_eq!(restarts, ["restart kube-nginx.service"]);
}

/// A whole master: install.sh starts the controller manager and the scheduler after the
/// apiserver, and a file several units read (the client-CA bundle) restarts every one of
/// them when it changes, a file one unit reads (the scheduler's config) only that one.
#[test]
fn a_whole_master_starts_its_units_in_order_and_a_shared_file_restarts_every_reader() {
    let sandbox = Sandbox::new();
    sandbox.enable_whole_master();
    let bundle = sandbox.build_and_extract("b1");
    let first = succeeded(&sandbox.install(&bundle, &[]));
    assert!(
        first.contains("check  kube-controller-manager") && first.contains("check  kube-scheduler"),
        "the pre-flight checks the programs: {first}"
    );
    // Each unit's health gate passes before the next unit starts.
    let order: Vec<&str> = first
        .lines()
        .filter(|line| line.starts_with("kube-bundle: restarting") || line.contains("/healthz "))
        .map(|line| line.split_whitespace().nth(2).unwrap_or_default())
        .collect();
    assert_eq!(
        order,
        [
            "kube-apiserver.service",
            "healthz",
            "kube-controller-manager.service",
            "healthz",
            "kube-scheduler.service",
            "healthz",
            "kube-nginx.service",
            "healthz",
        ],
        "{first}"
    );
    for url in [
        "https://127.0.0.1:10257/healthz",
        "https://127.0.0.1:10259/healthz",
    ] {
        assert!(
            first
                .lines()
                .any(|line| line.contains(url) && line.ends_with(" ok")),
            "{url} in {first}"
        );
    }
    let starts: Vec<String> = sandbox
        .systemctl_log()
        .into_iter()
        .filter(|c| c.starts_with("restart") || c.starts_with("start"))
        .collect();
    assert_eq!(
        starts,
        [
            "restart kube-apiserver.service",
            "restart kube-controller-manager.service",
            "restart kube-scheduler.service",
            "restart kube-nginx.service",
        ]
    );

    let restarts_after = |path: &str| {
        let installed = sandbox.root().join(path.trim_start_matches('/'));
        let mut bytes = fs::read(&installed).unwrap();
        bytes.extend_from_slice(b"\n");
        fs::write(&installed, bytes).unwrap();
        sandbox.clear_logs();
        succeeded(&sandbox.install(&bundle, &[]));
        sandbox
            .systemctl_log()
            .into_iter()
            .filter(|c| c.starts_with("restart"))
            .collect::<Vec<String>>()
    };
    assert_eq!(
        restarts_after("/etc/kubernetes/pki/client-ca.crt"),
        [
            "restart kube-apiserver.service",
            "restart kube-controller-manager.service",
            "restart kube-scheduler.service",
        ]
    );
    assert_eq!(
        restarts_after("/etc/kubernetes/kube-scheduler.yaml"),
        ["restart kube-scheduler.service"]
    );
}

/// A scheduler that never turns healthy after an upgrade rolls the whole node back: every
/// file of every unit, the apiserver and the controller manager restarted on their old
/// files, and the failure names the scheduler and shows its journal.
#[test]
fn a_scheduler_that_never_turns_healthy_rolls_the_whole_node_back() {
    let sandbox = Sandbox::new();
    sandbox.enable_whole_master();
    let first = sandbox.build_and_extract("b1");
    succeeded(&sandbox.install(&first, &[]));
    let before = sandbox.tree();
    // One flag each for the apiserver and the scheduler: both restart.
    sandbox.edit("extraArgs: {}", "extraArgs: { event-ttl: 2h }");
    let config = sandbox.path().join("cluster.yaml");
    let text = fs::read_to_string(&config)
        .unwrap()
        .replace("scheduler: {}", "scheduler: { extraArgs: { v: \"3\" } }");
    fs::write(&config, text).unwrap();
    let second = sandbox.build_and_extract("b2");
    fs::write(
        sandbox.stub_dir().join("unhealthy-kube-scheduler.service"),
        "",
    )
    .unwrap();
    sandbox.clear_logs();
    let output = sandbox.install_with(&second, &["--timeout", "3"], &[]);
    let text = stdout(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("kube-scheduler.service not healthy after 3s")
            && text.contains("rolled back")
            && text.contains("stub journal for -u kube-scheduler.service -n 50"),
        "{text}"
    );
    assert_back_at(&sandbox, &before, "an unhealthy scheduler");
    // Restarted in order, then the rollback restarts both on their old files; the
    // controller manager, whose files did not change, is left running throughout.
    let restarts: Vec<String> = sandbox
        .systemctl_log()
        .into_iter()
        .filter(|c| c.starts_with("restart") || c.starts_with("stop"))
        .collect();
    assert_eq!(
        restarts,
        [
            "restart kube-apiserver.service",
            "restart kube-scheduler.service",
            "restart kube-apiserver.service",
            "restart kube-scheduler.service",
        ]
    );
}

/// A client bundle installs the front alone, reaches an apiserver through it with a
/// TLS handshake verified against the cluster CA and no credentials, and a second run
/// changes and restarts nothing.
#[test]
fn a_client_bundle_installs_the_front_and_checks_through_it() {
    let sandbox = Sandbox::new();
    sandbox.add_client();
    let master = sandbox.build_and_extract("b1");
    let client = sandbox.extract("w1", "b1");
    succeeded(&sandbox.install(&master, &[]));
    // The client's front takes over the listen address from the master's.
    sandbox.stop_pid("nginx.pid");
    sandbox.clear_logs();

    let root = sandbox.path().join("client-root");
    let first = succeeded(&sandbox.install_on(&client, &root, "w1", &[], &[]));
    assert!(
        first.contains(&format!(
            "healthz through the front https://127.0.{}.100:8443/healthz ok",
            sandbox.subnet
        )),
        "{first}"
    );
    assert!(!first.contains("kube-apiserver binary"), "{first}");
    let requests = fs::read_to_string(sandbox.stub_dir().join("requests.log")).unwrap();
    assert!(
        requests.lines().any(|l| l == "GET /healthz anonymous"),
        "no request reached the apiserver through the front: {requests}"
    );
    let mut installed = Vec::new();
    let mut stack = vec![root.join("etc")];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                installed.push(path.strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    installed.sort();
    assert_eq!(
        installed,
        [
            "etc/kubernetes/kube-nginx.conf",
            "etc/kubernetes/pki/ca.crt",
            "etc/systemd/system/kube-nginx.service",
        ],
        "a client gets the front and the CA, no key"
    );
    let restarts = |log: Vec<String>| -> Vec<String> {
        log.into_iter()
            .filter(|c| c.starts_with("restart") || c.starts_with("start"))
            .collect()
    };
    assert_eq!(
        restarts(sandbox.systemctl_log()),
        ["restart kube-nginx.service"]
    );

    sandbox.clear_logs();
    let second = succeeded(&sandbox.install_on(&client, &root, "w1", &[], &[]));
    assert!(second.contains("0 file(s) installed"), "{second}");
    assert!(restarts(sandbox.systemctl_log()).is_empty(), "{second}");
    let status = succeeded(&sandbox.install_on(&client, &root, "w1", &["--status"], &[]));
    assert!(
        status.contains("bundle role") && status.contains("client"),
        "{status}"
    );
}

#[test]
fn an_apiserver_that_never_turns_healthy_is_rolled_back() {
    let sandbox = Sandbox::new();
    let first = sandbox.build_and_extract("b1");
    succeeded(&sandbox.install(&first, &[]));
    let before = sandbox.tree();
    sandbox.edit("extraArgs: {}", "extraArgs: { event-ttl: 2h }");
    let second = sandbox.build_and_extract("b2");
    fs::write(sandbox.stub_dir().join("unhealthy"), "").unwrap();
    let output = sandbox.install_with(&second, &["--timeout", "3"], &[]);
    let text = stdout(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("rolled back")
            && text.contains("stub journal for -u kube-apiserver.service -n 50"),
        "{text}"
    );
    assert_eq!(
        sandbox.tree(),
        before,
        "the previous files are restored byte for byte"
    );
}

/// A run killed part-way leaves some of the new bundle's files in place. When the run
/// that finishes it turns out unhealthy, the rollback must undo the first run's work too,
/// which this run saw as unchanged: the node ends as the previous bundle left it.
#[test]
fn a_resumed_install_that_turns_unhealthy_rolls_back_the_interrupted_runs_files() {
    let sandbox = Sandbox::new();
    sandbox.edit(
        "extraArgs: {}",
        "audit: { enabled: false }\n  extraArgs: {}",
    );
    let first = sandbox.build_and_extract("b1");
    succeeded(&sandbox.install(&first, &[]));
    let before = sandbox.tree();
    // The next bundle adds audit-policy.yaml (new) and changes the unit.
    sandbox.edit("audit: { enabled: false }", "audit: { enabled: true }");
    let second = sandbox.build_and_extract("b2");
    let killed = sandbox.install_with(&second, &[], &[("KILL_AT_MV", "2")]);
    assert!(!killed.status.success(), "{}", stdout(&killed));
    assert!(
        sandbox
            .root()
            .join("etc/kubernetes/audit-policy.yaml")
            .exists(),
        "the killed run should have installed the new file before dying:\n{}",
        stdout(&killed)
    );
    fs::write(sandbox.stub_dir().join("unhealthy"), "").unwrap();
    let output = sandbox.install_with(&second, &["--timeout", "3"], &[]);
    let text = stdout(&output);
    assert!(
        !output.status.success() && text.contains("rolled back"),
        "{text}"
    );
    assert_eq!(
        sandbox.tree(),
        before,
        "files of the interrupted run survived the rollback"
    );
}

#[test]
fn a_run_killed_after_any_step_converges_when_rerun() {
    let sandbox = Sandbox::new();
    let bundle = sandbox.build_and_extract("b1");
    let mut kill_at = 1;
    loop {
        // A fresh node each time, killed right after its kill_at-th rename.
        sandbox.stop_units();
        for dir in ["etc", "var"] {
            let _ = fs::remove_dir_all(sandbox.root().join(dir));
        }
        let count_file = sandbox.stub_dir().join("mv.count");
        let _ = fs::remove_file(&count_file);
        let output = sandbox.install_with(&bundle, &[], &[("KILL_AT_MV", &kill_at.to_string())]);
        let calls: u32 = fs::read_to_string(&count_file)
            .map(|c| c.trim().parse().unwrap())
            .unwrap_or(0);
        if calls < kill_at {
            // The run finished before reaching that step: every step has been interrupted.
            assert!(output.status.success(), "{}", stdout(&output));
            break;
        }
        assert!(
            !output.status.success(),
            "a run killed at rename #{kill_at} reported success"
        );
        let rerun = sandbox.install(&bundle, &[]);
        assert_eq!(
            sandbox.private_copies(),
            Vec::<String>::new(),
            "the killed run's private copy (keys) survived the re-run"
        );
        assert!(
            rerun.status.success(),
            "re-run after a kill at rename #{kill_at}:\n{}",
            stdout(&rerun)
        );
        assert_installed(&sandbox, &bundle);
        let again = succeeded(&sandbox.install(&bundle, &[]));
        assert!(
            !again.contains("kube-bundle: changed") && !again.contains("kube-bundle: new "),
            "#{kill_at}: {again}"
        );
        kill_at += 1;
        assert!(kill_at < 200, "runaway");
    }
    assert!(kill_at > 19, "only {kill_at} steps were interrupted");
    let again = succeeded(&sandbox.install(&bundle, &[]));
    assert!(
        !again.contains("kube-bundle: changed") && !again.contains("kube-bundle: new "),
        "{again}"
    );
}

#[test]
fn a_corrupted_bundle_file_stops_the_install_before_any_change() {
    let sandbox = Sandbox::new();
    let bundle = sandbox.build_and_extract("b1");
    let unit = bundle.join("rootfs/etc/systemd/system/kube-apiserver.service");
    let mut bytes = fs::read(&unit).unwrap();
    bytes[100] ^= 0x20;
    fs::write(&unit, bytes).unwrap();
    let before = sandbox.tree();
    let output = sandbox.install(&bundle, &[]);
    assert!(!output.status.success());
    assert!(
        stdout(&output).contains("SHA256SUMS does not match"),
        "{}",
        stdout(&output)
    );
    assert_eq!(sandbox.tree(), before);
    assert!(sandbox.systemctl_log().is_empty());
}

#[test]
fn the_wrong_node_stops_the_install_unless_forced() {
    let sandbox = Sandbox::new();
    let bundle = sandbox.build_and_extract("b1");
    let before = sandbox.tree();
    let output = sandbox.install_with(&bundle, &[], &[("STUB_HOSTNAME", "cp2")]);
    assert!(!output.status.success());
    assert!(
        stdout(&output).contains("this bundle is for cp1"),
        "{}",
        stdout(&output)
    );
    assert_eq!(sandbox.tree(), before);
    // An address match is enough, and --force overrides.
    let by_address = sandbox.node_ip();
    let output = sandbox.install_with(
        &bundle,
        &["--dry-run"],
        &[("STUB_HOSTNAME", "cp2"), ("STUB_ADDRESSES", &by_address)],
    );
    succeeded(&output);
    succeeded(&sandbox.install_with(
        &bundle,
        &["--dry-run", "--force"],
        &[("STUB_HOSTNAME", "other")],
    ));
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let sandbox = Sandbox::new();
    let bundle = sandbox.build_and_extract("b1");
    let before = sandbox.tree();
    let text = succeeded(&sandbox.install(&bundle, &["--dry-run"]));
    assert!(
        text.contains("kube-bundle: new       /etc/kubernetes/pki/apiserver.crt"),
        "{text}"
    );
    assert!(text.contains("dry run"), "{text}");
    assert_eq!(sandbox.tree(), before);
    assert!(sandbox.systemctl_log().is_empty());
    assert!(!sandbox.root().join("var/lib/kube-bundle").exists());
}

#[test]
fn preflight_names_what_is_wrong() {
    let sandbox = Sandbox::new();
    let bundle = sandbox.build_and_extract("b1");
    fs::write(
        sandbox.root().join("usr/local/bin/kube-apiserver"),
        "#!/bin/sh\necho 'Kubernetes v1.35.0'\n",
    )
    .unwrap();
    let output = sandbox.install(&bundle, &[]);
    assert!(!output.status.success());
    let text = stdout(&output);
    assert!(
        text.contains("reports 'Kubernetes v1.35.0', the bundle is for v1.36.1"),
        "{text}"
    );
    assert!(
        text.contains("pre-flight failed; nothing was changed"),
        "{text}"
    );
}

#[test]
fn uninstall_removes_exactly_the_bundles_files_and_its_backups_unless_kept() {
    let sandbox = Sandbox::new();
    let bundle = sandbox.build_and_extract("b1");
    let unrelated = sandbox.root().join("etc/kubernetes/other.conf");
    fs::create_dir_all(unrelated.parent().unwrap()).unwrap();
    fs::write(&unrelated, "mine").unwrap();
    succeeded(&sandbox.install(&bundle, &[]));
    sandbox.edit("extraArgs: {}", "extraArgs: { event-ttl: 2h }");
    let second = sandbox.build_and_extract("b2");
    succeeded(&sandbox.install(&second, &[]));
    succeeded(&sandbox.install(&second, &["--uninstall", "--keep-backups"]));
    let left: Vec<String> = sandbox.tree().into_keys().collect();
    assert_eq!(
        left,
        ["etc/kubernetes/other.conf", "usr/local/bin/kube-apiserver"]
    );
    let backups = sandbox.root().join("var/lib/kube-bundle/backups");
    assert!(
        backups.read_dir().unwrap().count() > 0,
        "--keep-backups kept them"
    );
    // Without --keep-backups the backups (old keys among them) go too.
    succeeded(&sandbox.install(&second, &[]));
    succeeded(&sandbox.install(&second, &["--uninstall"]));
    assert!(!backups.exists(), "backups survived an uninstall");
    assert!(
        sandbox
            .systemctl_log()
            .iter()
            .any(|c| c.starts_with("stop"))
    );
}

#[test]
fn every_rendered_installer_is_shellcheck_clean() {
    let sandbox = Sandbox::new();
    sandbox.add_client();
    let bundle = sandbox.build_and_extract("b1");
    let client = sandbox.extract("w1", "b1");
    let seed = tempfile::tempdir().unwrap();
    fs::copy(
        repo_root().join("examples/seed-ha.yaml"),
        seed.path().join("cluster.yaml"),
    )
    .unwrap();
    kube_bundle(seed.path(), &["build"]).code(0);
    let seed_tar = seed.path().join("bundles/seed-ha/m7-autocv-gpu01.tar.gz");
    Command::new("tar")
        .args(["xzf", seed_tar.to_str().unwrap()])
        .current_dir(seed.path())
        .status()
        .unwrap();
    for script in [
        bundle.join("install.sh"),
        client.join("install.sh"),
        seed.path().join("m7-autocv-gpu01/install.sh"),
    ] {
        let output = Command::new("shellcheck")
            .args(["--severity=style", script.to_str().unwrap()])
            .output()
            .expect("shellcheck must be installed (.ci/run installs it)");
        assert!(
            output.status.success(),
            "{}: {}",
            script.display(),
            String::from_utf8_lossy(&output.stdout)
        );
    }
    for stub in ["systemctl", "hostname", "journalctl", "mv", "curl"] {
        let status = Command::new("shellcheck")
            .arg(repo_root().join("tests/stubs").join(stub))
            .status()
            .unwrap();
        assert!(status.success(), "tests/stubs/{stub}");
    }
}

#[test]
fn status_runs_the_seed_checks() {
    let sandbox = Sandbox::new();
    let bundle = sandbox.build_and_extract("b1");
    succeeded(&sandbox.install(&bundle, &[]));
    let text = succeeded(&sandbox.install(&bundle, &["--status"]));
    assert!(
        text.contains("kube-apiserver.service") && text.contains("active"),
        "{text}"
    );
    assert!(text.contains("healthz") && text.contains(" ok"), "{text}");
    assert!(
        text.contains("installed bundle") && text.contains("cp1-"),
        "{text}"
    );
}

/// Generation 1 installed and healthy, generation 2 (one changed flag) extracted.
fn two_generations(sandbox: &Sandbox) -> (PathBuf, PathBuf) {
    let first = sandbox.build_and_extract("b1");
    succeeded(&sandbox.install(&first, &[]));
    sandbox.edit("extraArgs: {}", "extraArgs: { event-ttl: 2h }");
    let second = sandbox.build_and_extract("b2");
    (first, second)
}

/// The node is exactly as generation 1 left it: files, modes, owners, no temp files or
/// old-content links, no pending marker, no backup of the failed run.
#[track_caller]
fn assert_back_at(sandbox: &Sandbox, before: &BTreeMap<String, (u32, u32, Vec<u8>)>, why: &str) {
    assert_eq!(&sandbox.tree(), before, "{why}: the node is not as it was");
    let state = sandbox.root().join("var/lib/kube-bundle");
    assert!(
        !state.join("pending").exists(),
        "{why}: pending marker left"
    );
    assert_eq!(
        sandbox.private_copies(),
        Vec::<String>::new(),
        "{why}: private copy left"
    );
    let backups: Vec<_> = fs::read_dir(state.join("backups"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(
        backups.len() <= 1,
        "{why}: the failed run's backup stayed: {backups:?}"
    );
}

#[test]
fn every_failing_systemctl_step_rolls_back_to_the_previous_generation() {
    let sandbox = Sandbox::new();
    let (_, second) = two_generations(&sandbox);
    let before = sandbox.tree();
    for verb in ["restart", "daemon-reload", "enable"] {
        let flag = sandbox.stub_dir().join(format!("fail-{verb}"));
        fs::write(&flag, "").unwrap();
        sandbox.clear_logs();
        let output = sandbox.install(&second, &[]);
        fs::remove_file(&flag).unwrap();
        let text = stdout(&output);
        assert!(!output.status.success(), "{verb}: {text}");
        assert!(
            text.contains(&format!("systemctl {verb}")) && text.contains("rolled back"),
            "{verb}: the failing step is not named:\n{text}"
        );
        assert!(
            text.contains("journal lines"),
            "{verb}: no journal:\n{text}"
        );
        assert_back_at(&sandbox, &before, verb);
        // A failed restart restarts the previous apiserver on the restored files; a
        // failure before any restart leaves the running units alone.
        let log = sandbox.systemctl_log();
        let restarts = log.iter().filter(|c| c.starts_with("restart")).count();
        match verb {
            "restart" => assert!(
                log.last()
                    .is_some_and(|c| c == "restart kube-apiserver.service")
                    && restarts == 2,
                "{verb}: the previous unit was not restarted: {log:?}"
            ),
            _ => assert_eq!(restarts, 0, "{verb}: {log:?}"),
        }
    }
    // And the same generation installs cleanly once nothing fails.
    succeeded(&sandbox.install(&second, &[]));
    assert_installed(&sandbox, &second);
}

/// Installs `bundle` with a stub told by `variable` to strike at its Nth call, for
/// N = 1, 2, … until a run finishes before the stub's Nth call; `check` sees each struck
/// run. Returns how many runs were struck.
fn strike_each_call(
    sandbox: &Sandbox,
    bundle: &Path,
    (variable, count_file): (&str, &str),
    mut check: impl FnMut(u32, &Output),
) -> u32 {
    let mut strike_at = 1;
    loop {
        let count_file = sandbox.stub_dir().join(count_file);
        let _ = fs::remove_file(&count_file);
        let output = sandbox.install_with(bundle, &[], &[(variable, &strike_at.to_string())]);
        let calls: u32 = fs::read_to_string(&count_file)
            .map(|c| c.trim().parse().unwrap())
            .unwrap_or(0);
        if calls < strike_at {
            assert!(output.status.success(), "{}", stdout(&output));
            return strike_at - 1;
        }
        check(strike_at, &output);
        strike_at += 1;
    }
}

#[test]
fn sigterm_at_any_step_ends_back_at_the_previous_generation() {
    let sandbox = Sandbox::new();
    let (_, second) = two_generations(&sandbox);
    let before = sandbox.tree();
    let struck = strike_each_call(
        &sandbox,
        &second,
        ("TERM_AT_MV", "mv.count"),
        |n, output| {
            let text = stdout(output);
            assert!(!output.status.success(), "SIGTERM at rename #{n}: {text}");
            assert!(
                text.contains("SIGTERM") && text.contains("rolled back"),
                "{text}"
            );
            assert_back_at(&sandbox, &before, &format!("SIGTERM at rename #{n}"));
        },
    );
    assert!(struck >= 3, "only {struck} steps were interrupted");
    assert_installed(&sandbox, &second);
}

#[test]
fn a_full_disk_ends_byte_identical_with_no_temp_files() {
    let sandbox = Sandbox::new();
    let bundle = sandbox.build_and_extract("b1");
    let root = sandbox.root();
    let binary = fs::read(root.join("usr/local/bin/kube-apiserver")).unwrap();
    let _mounted = crate::harness::Tmpfs::mount(&root, "size=64k,mode=0755");
    let bin = root.join("usr/local/bin/kube-apiserver");
    fs::create_dir_all(bin.parent().unwrap()).unwrap();
    fs::write(&bin, &binary).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    let before = sandbox.tree();
    let output = sandbox.install(&bundle, &[]);
    let text = stdout(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("free space"), "{text}");
    assert_eq!(sandbox.tree(), before, "{text}");
    assert!(!root.join("var/lib/kube-bundle/pending").exists());
}

#[test]
fn a_sandbox_root_never_drives_this_hosts_units() {
    let sandbox = Sandbox::new();
    let bundle = sandbox.build_and_extract("b1");
    sandbox.clear_logs();
    let text = succeeded(&sandbox.install(&bundle, &[NO_UNITS]));
    assert!(text.contains("sandbox root"), "{text}");
    assert_installed(&sandbox, &bundle);
    succeeded(&sandbox.install(&bundle, &["--uninstall", NO_UNITS]));
    assert_eq!(
        sandbox.systemctl_log(),
        Vec::<String>::new(),
        "systemctl was called under --root"
    );
    // Parent folders are readable by non-root tools; the key files are not.
    let tree = sandbox.tree();
    assert!(tree.is_empty() || tree.keys().all(|k| !k.starts_with("etc/kubernetes/pki/")));
    succeeded(&sandbox.install(&bundle, &[]));
    for folder in ["etc/kubernetes", "etc/kubernetes/pki", "var/lib/kubernetes"] {
        let mode = fs::metadata(sandbox.root().join(folder)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o755, "{folder}");
    }
    assert_eq!(sandbox.tree()["etc/kubernetes/pki/apiserver.key"].0, 0o600);
}

#[test]
fn after_renewal_and_rotation_only_one_generation_of_old_keys_stays() {
    let sandbox = Sandbox::new();
    let first = sandbox.build_and_extract("b1");
    succeeded(&sandbox.install(&first, &[]));
    let original_key = fs::read(sandbox.root().join("etc/kubernetes/pki/apiserver.key")).unwrap();
    kube_bundle(sandbox.path(), &["certs", "renew", "--all"]).code(0);
    let second = sandbox.build_and_extract("b2");
    succeeded(&sandbox.install(&second, &[]));
    kube_bundle(sandbox.path(), &["encryption", "rotate"]).code(0);
    let third = sandbox.build_and_extract("b3");
    succeeded(&sandbox.install(&third, &[]));
    let backups = sandbox.root().join("var/lib/kube-bundle/backups");
    let generations: Vec<_> = fs::read_dir(&backups).unwrap().collect();
    assert_eq!(generations.len(), 1, "one generation of backups");
    let mut stack = vec![backups];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = fs::read(&path).unwrap();
                assert_ne!(
                    bytes,
                    original_key,
                    "{} holds the first key",
                    path.display()
                );
            }
        }
    }
}

/// Whoever owns the extracted folder swaps the unit right after the checksum check:
/// install.sh installs from its own copy, so the swap changes nothing.
#[test]
fn a_file_swapped_after_the_check_is_never_installed() {
    let sandbox = Sandbox::new();
    let bundle = sandbox.build_and_extract("b1");
    let swapper = sandbox.path().join("swapper");
    fs::create_dir_all(&swapper).unwrap();
    let unit = bundle.join("rootfs/etc/systemd/system/kube-apiserver.service");
    let script = format!(
        "#!/bin/sh\n/usr/bin/sha256sum \"$@\"; status=$?\n\
         echo 'ExecStartPre=/bin/sh -c evil' >> '{}'\nexit $status\n",
        unit.display()
    );
    fs::write(swapper.join("sha256sum"), script).unwrap();
    fs::set_permissions(swapper.join("sha256sum"), fs::Permissions::from_mode(0o755)).unwrap();
    let stubs = repo_root().join("tests/stubs");
    let path = format!(
        "{}:{}:{}",
        swapper.display(),
        stubs.display(),
        std::env::var("PATH").unwrap()
    );
    let text = succeeded(&sandbox.install_with(&bundle, &[], &[("PATH", &path)]));
    assert!(
        fs::read_to_string(&unit).unwrap().contains("evil"),
        "the swap did happen in the extracted folder"
    );
    let installed = sandbox.tree()["etc/systemd/system/kube-apiserver.service"]
        .2
        .clone();
    assert!(
        !String::from_utf8_lossy(&installed).contains("evil"),
        "the swapped unit was installed:\n{text}"
    );
}

#[test]
fn status_fails_when_a_check_fails_and_dry_run_shows_the_whole_plan() {
    let sandbox = Sandbox::new();
    let bundle = sandbox.build_and_extract("b1");
    succeeded(&sandbox.install(&bundle, &[]));
    succeeded(&sandbox.install(&bundle, &["--status"]));
    sandbox.stop_units();
    let output = sandbox.install(&bundle, &["--status"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("FAILED"), "{text}");

    // A node whose binary is missing: the dry run still lists every file, then fails.
    let fresh = Sandbox::new();
    let bundle = fresh.build_and_extract("b1");
    fs::remove_file(fresh.root().join("usr/local/bin/kube-apiserver")).unwrap();
    let output = fresh.install(&bundle, &["--dry-run"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("kube-apiserver binary") && text.contains("FAILED"),
        "{text}"
    );
    assert!(
        text.contains("new       /etc/systemd/system/kube-apiserver.service"),
        "the plan is missing:\n{text}"
    );
    assert_eq!(fresh.tree().len(), 0, "a dry run changed the node");
}

#[test]
fn uninstall_on_a_real_root_needs_confirmation() {
    let sandbox = Sandbox::new();
    let bundle = sandbox.build_and_extract("b1");
    // No --root: the real host. Without --yes and without a terminal nothing happens.
    let stubs = repo_root().join("tests/stubs");
    let output = Command::new("bash")
        .arg(bundle.join("install.sh"))
        .arg("--uninstall")
        .env(
            "PATH",
            format!("{}:{}", stubs.display(), std::env::var("PATH").unwrap()),
        )
        .env("STUB_DIR", sandbox.stub_dir())
        .env("STUB_HOSTNAME", "cp1")
        .env("STUB_ADDRESSES", "192.0.2.10")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("--yes"), "{text}");
    assert_eq!(sandbox.systemctl_log(), Vec::<String>::new());
    // The wrong node is refused before the question.
    let output = Command::new("bash")
        .arg(bundle.join("install.sh"))
        .args(["--uninstall", "--yes"])
        .env(
            "PATH",
            format!("{}:{}", stubs.display(), std::env::var("PATH").unwrap()),
        )
        .env("STUB_DIR", sandbox.stub_dir())
        .env("STUB_HOSTNAME", "somewhere-else")
        .env("STUB_ADDRESSES", "192.0.2.10")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    assert!(stdout(&output).contains("this bundle is for cp1"));
    assert_eq!(sandbox.systemctl_log(), Vec::<String>::new());
}

/// A copy failing as on a full disk, at every copy the install makes in turn: the node
/// always ends as generation 1 left it.
#[test]
fn a_copy_failing_at_any_point_ends_back_at_the_previous_generation() {
    let sandbox = Sandbox::new();
    let (_, second) = two_generations(&sandbox);
    let before = sandbox.tree();
    let struck = strike_each_call(
        &sandbox,
        &second,
        ("FAIL_AT_CP", "cp.count"),
        |n, output| {
            let text = stdout(output);
            assert!(!output.status.success(), "cp #{n} failed: {text}");
            assert_back_at(&sandbox, &before, &format!("cp #{n} failed"));
        },
    );
    assert!(struck >= 2, "only {struck} copies were failed");
    assert_installed(&sandbox, &second);
}
