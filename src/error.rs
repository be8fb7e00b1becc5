//! The error every stage returns, and the exit code each kind maps to.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit codes of the command-line contract.
pub mod exit {
    pub const INVALID_INPUT: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const VERIFICATION_FAILED: u8 = 3;
    /// Nothing in the user's input can fix it (sysexits' EX_SOFTWARE): a broken invariant
    /// inside kube-bundle, or the cryptography library or OS random source failing.
    pub const INTERNAL: u8 = 70;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// cluster.yaml did not parse or did not validate: one pointed report per problem.
    #[error("the cluster description has {} error(s)", .0.len())]
    InvalidConfig(Vec<miette::Report>),

    /// Bad input that is not a position in cluster.yaml (a missing file, a foreign key file).
    #[error("{0}")]
    Input(String),

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A command-line combination clap cannot express.
    #[error("{0}")]
    Usage(String),

    /// A bundle, signature or checksum did not verify.
    #[error("verification failed: {0}")]
    Verification(String),

    /// An invariant of kube-bundle itself does not hold: no input can fix it.
    #[error("internal error, a bug in kube-bundle (please report it with the command line): {0}")]
    Internal(String),

    /// The cryptography library or the OS random source failed while generating a key or
    /// signing: the system's fault, not the input's, and no bug to report either.
    #[error("the crypto library or the OS random source failed, not your input: {0}")]
    Crypto(String),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Self::InvalidConfig(_) | Self::Input(_) | Self::Io { .. } => exit::INVALID_INPUT,
            Self::Usage(_) => exit::USAGE,
            Self::Verification(_) => exit::VERIFICATION_FAILED,
            Self::Internal(_) | Self::Crypto(_) => exit::INTERNAL,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_invariant_is_reported_as_a_bug_with_its_own_exit_code() {
        let bug = Error::Internal("no etcd CA".into());
        assert_eq!(bug.exit_code(), ExitCode::from(exit::INTERNAL));
        assert_ne!(
            bug.exit_code(),
            Error::Input("x".into()).exit_code(),
            "a bug is not bad input"
        );
        assert!(bug.to_string().contains("a bug in kube-bundle"), "{bug}");
    }

    #[test]
    fn a_crypto_failure_is_neither_bad_input_nor_a_bug() {
        let failure = Error::Crypto("key generation failed".into());
        assert_eq!(failure.exit_code(), ExitCode::from(exit::INTERNAL));
        let text = failure.to_string();
        assert!(text.contains("not your input"), "{text}");
        assert!(!text.contains("a bug"), "{text}");
    }
}
