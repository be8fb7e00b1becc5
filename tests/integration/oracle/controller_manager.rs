//! kube-controller-manager against `versions::controller_manager` and
//! `versions::leader_election`: its flags through `--help`, and every lock type through a
//! start against an apiserver that cannot answer. A refused lock stops the process during
//! validation; an accepted one gets as far as asking the apiserver for the lock, where the
//! test stops it. No cluster, a few seconds.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use kube_bundle::versions::controller_manager::FLAGS;
use kube_bundle::versions::leader_election::{CONTROLLER_MANAGER_LOCK_NAME, LOCK_TYPES};

use super::{
    Target, check_flag_table, help_flags, kube_binary, minor_of, report, unreachable_kubeconfig,
};

/// How long a start may take to either stop or reach the lock (it takes about a second).
const START_DEADLINE: Duration = Duration::from_secs(60);

pub(super) fn check(version: &str) {
    let minor = minor_of(version);
    let binary = kube_binary(version, "kube-controller-manager");
    let help = help_flags(&binary, "cluster-signing-cert-file");
    let (mut problems, mut notes) = (Vec::new(), Vec::new());
    check_flag_table(
        &Target::kube(&binary, minor),
        FLAGS,
        &help,
        &mut problems,
        &mut notes,
    );

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = unreachable_kubeconfig(dir.path());
    for lock in LOCK_TYPES {
        let args = [
            format!("--kubeconfig={}", kubeconfig.display()),
            // No serving: two releases' tests may run at once.
            "--secure-port=0".to_owned(),
            "--leader-elect=true".to_owned(),
            format!("--leader-elect-resource-lock={}", lock.name),
        ];
        let asks_for_the_lock = |line: &str| {
            line.contains(&format!("kube-system/{CONTROLLER_MANAGER_LOCK_NAME}"))
                && line.to_lowercase().contains("lock")
        };
        match (
            lock.accepted_in(minor),
            start_until(&binary, &args, asks_for_the_lock),
        ) {
            (true, Start::Reached(_)) => {}
            (false, Start::Exited(status, stderr))
                if !status.success() && stderr.to_lowercase().contains("lock") => {}
            (accepted, outcome) => problems.push(format!(
                "--leader-elect-resource-lock={}: the table says 1.{minor} accepts it: \
                 {accepted} ({}), but the binary {}",
                lock.name,
                lock.note,
                match outcome {
                    Start::Reached(line) => format!("went on to ask for the lock: {line:?}"),
                    Start::Exited(status, stderr) => format!("stopped ({status}): {stderr}"),
                }
            )),
        }
    }

    eprintln!(
        "oracle {version}: kube-controller-manager: {} table rows, {} flags in --help, {} \
         lock types",
        FLAGS.len(),
        help.len(),
        LOCK_TYPES.len()
    );
    report(
        &format!("kube-controller-manager {version}"),
        &problems,
        &notes,
    );
}

/// How a start against an unreachable apiserver ended.
enum Start {
    /// It stopped by itself: its status and its stderr.
    Exited(ExitStatus, String),
    /// It logged a line `reached` matched, and was stopped there: that line.
    Reached(String),
}

/// Starts `binary` and waits until it either exits or logs a line `reached` matches.
fn start_until(binary: &Path, args: &[String], reached: impl Fn(&str) -> bool) -> Start {
    let mut child = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} does not start: {e}", binary.display()));
    let stderr = child.stderr.take().expect("stderr is piped");
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + START_DEADLINE;
    let mut seen = Vec::new();
    loop {
        match received.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if reached(&line) => {
                let _ = child.kill();
                let _ = child.wait();
                return Start::Reached(line);
            }
            Ok(line) => seen.push(line),
            // stderr closed: the process is gone.
            Err(RecvTimeoutError::Disconnected) => {
                let status = child.wait().unwrap();
                return Start::Exited(status, seen.join("\n"));
            }
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} {args:?} neither stopped nor reached the lock within {:?}:\n{}",
                    binary.display(),
                    START_DEADLINE,
                    seen.join("\n")
                );
            }
        }
    }
}
