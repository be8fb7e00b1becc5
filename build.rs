//! Build script: records the git commit the binary is built from, for `--version`.
//!
//! The commit comes from git when the crate is built inside its own checkout, and is
//! "unknown" otherwise (a release tarball, a vendored copy, no git installed), so a build
//! never fails for want of git. No "-dirty" marker: whether the tree has uncommitted edits
//! changes with every saved file, which cargo cannot be told to watch, so the marker would
//! go stale and two builds of the same tree could disagree.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Enough hex digits to be unique in any repository of this size, fixed so that every
/// clone prints the same text (git's own `--short` grows with the object count).
const COMMIT_DIGITS: usize = 12;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let commit = commit_of(&manifest_dir).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=KUBE_BUNDLE_COMMIT={commit}");
}

/// The checkout's HEAD commit, and rebuild triggers for when it moves; None outside a
/// checkout of this crate.
fn commit_of(manifest_dir: &Path) -> Option<String> {
    // A copy of the crate inside some other repository (vendored) must not print that
    // repository's commit: only a checkout whose top level is this crate counts.
    let top_level = git(manifest_dir, &["rev-parse", "--show-toplevel"])?;
    if std::fs::canonicalize(&top_level).ok()? != std::fs::canonicalize(manifest_dir).ok()? {
        return None;
    }
    let head = git(manifest_dir, &["rev-parse", "--verify", "HEAD"])?;
    watch_head(manifest_dir);
    Some(head.chars().take(COMMIT_DIGITS).collect())
}

/// HEAD moves when a branch is switched (HEAD itself) or committed to (the branch's ref,
/// a loose file, or packed-refs once packed). `--git-path` resolves them for linked
/// worktrees too, whose HEAD and refs live in different folders.
fn watch_head(manifest_dir: &Path) {
    let mut watched = vec![git(manifest_dir, &["rev-parse", "--git-path", "HEAD"])];
    watched.push(git(
        manifest_dir,
        &["rev-parse", "--git-path", "packed-refs"],
    ));
    if let Some(branch) = git(manifest_dir, &["symbolic-ref", "-q", "HEAD"]) {
        // The ref's folder rather than the file: a packed ref becomes a loose file again on
        // the next commit, and a file that does not exist yet cannot be watched.
        let loose = git(manifest_dir, &["rev-parse", "--git-path", &branch]);
        watched.push(loose.and_then(|ref_file| {
            Path::new(&ref_file)
                .parent()
                .map(|folder| folder.display().to_string())
        }));
    }
    for path in watched.into_iter().flatten() {
        let path = manifest_dir.join(path);
        // cargo reruns the script on every build for a path that does not exist.
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// One git command's trimmed stdout, None when git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    Some(text.trim().to_owned()).filter(|text| !text.is_empty())
}
