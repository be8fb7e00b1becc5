//! A small fluent wrapper around the built binary: run it, then assert exit code and output.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Run {
    pub output: Output,
    pub args: Vec<String>,
}

/// Runs `kube-bundle ARGS` in `dir`.
pub fn kube_bundle(dir: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_kube-bundle"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs");
    Run {
        output,
        args: args.iter().map(ToString::to_string).collect(),
    }
}

impl Run {
    /// The signing key fingerprint a `build` printed.
    #[track_caller]
    pub fn signing_fingerprint(&self) -> String {
        let stdout = self.stdout();
        stdout
            .lines()
            .find_map(|l| {
                l.strip_prefix("signing key fingerprint (sha256 of the public key DER): ")
            })
            .unwrap_or_else(|| panic!("build printed no fingerprint:\n{stdout}"))
            .trim()
            .to_owned()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    #[track_caller]
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.output.status.code(),
            Some(expected),
            "kube-bundle {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            self.stdout(),
            self.stderr()
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, fragment: &str) -> &Self {
        assert!(
            self.stderr().contains(fragment),
            "stderr lacks {fragment:?}:\n{}",
            self.stderr()
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, fragment: &str) -> &Self {
        assert!(
            self.stdout().contains(fragment),
            "stdout lacks {fragment:?}:\n{}",
            self.stdout()
        );
        self
    }
}

/// A child process killed and reaped when the guard goes out of scope.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts TCP connections at `address`. The 60 s deadline is only
/// a hang guard: the success path returns as soon as the listener is up.
pub fn wait_for(address: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(address).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on {address}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `openssl s_client ARGS` in `dir`, sending one HTTP/1.0 GET and reading until the
/// server closes: whether it exited 0, and its stdout (handshake report and response).
pub fn s_client_get(dir: &Path, args: &[&str]) -> (bool, String) {
    use std::io::Write;
    use std::process::Stdio;
    let output = Command::new("openssl")
        .arg("s_client")
        .args(args)
        .arg("-ign_eof")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .expect("piped stdin")
                .write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            child.wait_with_output()
        })
        .expect("openssl must be installed (.ci/run installs it)");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// A 127.0.N.0/24 of `range` that no other test, in this process or another one on the
/// machine (two checkouts testing at once), is using: held until the returned lock drops.
pub fn claim_subnet(range: std::ops::RangeInclusive<u8>) -> (u8, std::fs::File) {
    let dir = std::env::temp_dir().join("kube-bundle-test-subnets");
    std::fs::create_dir_all(&dir).unwrap();
    for subnet in range.clone() {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("127.0.{subnet}.lock")))
            .unwrap();
        if lock.try_lock().is_ok() {
            return (subnet, lock);
        }
    }
    panic!("every 127.0.N.0/24 in {range:?} is in use by other tests");
}

/// Every file under `dir` with its content, the secrets lock aside.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if !path.ends_with(".lock") {
                files.insert(path.clone(), std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    files
}

/// The names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A tmpfs mounted on `path` until dropped. Root ignores permission bits, so only a real
/// read-only, full or separate filesystem tests those failures; CI runs as root, and a
/// test fails rather than skips if it cannot mount.
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: &Path, options: &str) -> Self {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(path)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mount -t tmpfs -o {options} failed: these tests need root (CI runs as root)"
        );
        Self {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// The Kubernetes releases of tests/e2e/kube-versions, in file order.
pub fn pinned_kube_versions() -> Vec<String> {
    let path = repo_root().join("tests/e2e/kube-versions");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|line| line.split('#').next().unwrap().trim())
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Where tests/e2e/build-kube.sh and build-etcd.sh cache the binaries they build.
pub fn binary_cache() -> PathBuf {
    match std::env::var_os("KUBE_BUNDLE_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/kube-bundle")
        }
    }
}

/// The etcd release tests/e2e/build-etcd.sh builds without an argument (what `.ci/run`
/// builds): the default on its `version=${1:-vX.Y.Z}` line.
pub fn pinned_etcd_version() -> String {
    let path = repo_root().join("tests/e2e/build-etcd.sh");
    let script = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    script
        .lines()
        .find_map(|line| line.strip_prefix("version=${1:-"))
        .and_then(|rest| rest.strip_suffix('}'))
        .unwrap_or_else(|| panic!("{} has no version=${{1:-vX.Y.Z}} line", path.display()))
        .to_owned()
}

/// An etcd member certificate issued with stock openssl from a stored kube-bundle CA
/// (`ca_pem`: certificate then key), as an operator's own etcd would have: a P-256 key,
/// serverAuth and clientAuth (it serves clients and peers and is the peer client), SANs
/// `sans` (openssl syntax, e.g. `IP:127.0.0.1`). Writes `<stem>.key` and `<stem>.crt` under
/// `dir`, and the CA as `etcd-ca.crt` / `etcd-ca.key` there.
pub fn issue_etcd_cert(dir: &Path, ca_pem: &Path, stem: &str, sans: &str, serial: u32) {
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let ca_pem = ca_pem.to_str().expect("a UTF-8 path");
    openssl(&["pkey", "-in", ca_pem, "-out", "etcd-ca.key"]);
    openssl(&["x509", "-in", ca_pem, "-out", "etcd-ca.crt"]);
    let (key, csr, ext, crt) = (
        format!("{stem}.key"),
        format!("{stem}.csr"),
        format!("{stem}.ext"),
        format!("{stem}.crt"),
    );
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key,
        "-subj",
        "/CN=etcd",
        "-out",
        &csr,
    ]);
    fs::write(
        dir.join(&ext),
        format!("subjectAltName={sans}\nextendedKeyUsage=serverAuth,clientAuth\n"),
    )
    .expect("the extension file is written");
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        "etcd-ca.crt",
        "-CAkey",
        "etcd-ca.key",
        "-set_serial",
        &serial.to_string(),
        "-days",
        "1",
        "-extfile",
        &ext,
        "-out",
        &crt,
    ]);
}

/// Replaces the first `old` in DIR/cluster.yaml with `new`; `old` must be there.
pub fn edit_config(dir: &Path, old: &str, new: &str) {
    let path = dir.join("cluster.yaml");
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains(old), "cluster.yaml lacks {old:?}");
    fs::write(&path, text.replacen(old, new, 1)).unwrap();
}

/// Adds client w1 at `ip` to DIR/cluster.yaml: it gets a front-only bundle.
pub fn add_client(dir: &Path, ip: &str) {
    edit_config(
        dir,
        "network:",
        &format!("clients:\n  - {{ name: w1, ip: {ip} }}\nnetwork:"),
    );
}

/// A scratch project: cluster.yaml plus a copy of the fixture secrets (mode 0700).
pub struct Project {
    pub dir: tempfile::TempDir,
}

/// An example's text with its controllerManager and scheduler sections (and the comment
/// lines that introduce them) removed: the apiserver tier alone.
pub fn apiserver_only(text: &str) -> String {
    let mut kept = Vec::new();
    let mut comments: Vec<&str> = Vec::new();
    let mut skipping = false;
    for line in text.lines() {
        let top_level = !line.starts_with(' ') && !line.is_empty();
        if skipping && !top_level {
            continue;
        }
        skipping = false;
        if line.starts_with('#') {
            comments.push(line);
        } else if line.starts_with("controllerManager:") || line.starts_with("scheduler:") {
            comments.clear();
            skipping = true;
        } else {
            kept.append(&mut comments);
            kept.push(line);
        }
    }
    kept.append(&mut comments);
    let mut out = kept.join("\n");
    out.push('\n');
    out
}

/// examples/NAME as the tests that pin bundle bytes use it: the apiserver tier alone, which
/// is what the fixture secrets hold keys for (master.rs and the install tests cover the
/// controller manager and the scheduler).
pub fn apiserver_only_example(name: &str) -> String {
    apiserver_only(&fs::read_to_string(repo_root().join("examples").join(name)).unwrap())
}

impl Project {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("cluster.yaml"),
            apiserver_only_example("cluster.yaml"),
        )
        .unwrap();
        copy_tree(
            &repo_root().join("tests/fixtures/secrets/prod-eu1"),
            &dir.path().join("secrets/prod-eu1"),
        );
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn edit(&self, old: &str, new: &str) {
        edit_config(self.path(), old, new);
    }

    /// Adds client w1 (10.20.0.50), which gets a front-only bundle.
    pub fn add_client(&self) {
        add_client(self.path(), "10.20.0.50");
    }

    pub fn build(&self) -> Run {
        let run = kube_bundle(self.path(), &["build"]);
        run.code(0);
        run
    }

    pub fn bundle(&self, node: &str) -> PathBuf {
        self.path().join(format!("bundles/prod-eu1/{node}.tar.gz"))
    }
}

pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    fs::set_permissions(to, fs::Permissions::from_mode(0o700)).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
            fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}
