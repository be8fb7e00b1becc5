//! A small fluent wrapper around the built binary: run it, then assert exit code and output.

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
