//! The command line's shape: clap types only, one per command and option group.
//!
//! What each command does is in `commands`, one module per command; this file is what
//! `--help` shows, so it can be read without the wiring.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Compile a Kubernetes kube-apiserver tier into one signed, reproducible tarball per master.
#[derive(Debug, Parser)]
#[command(name = "kube-bundle", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub verbosity: Verbosity,
    #[command(subcommand)]
    pub command: Command,
}

/// How much a command says on stderr about slow work while it runs. Errors and warnings
/// are printed whatever this says.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct Verbosity {
    /// No progress on stderr (errors and warnings still print).
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Progress with every step and its time, also when stderr is not a terminal (CI logs).
    #[arg(long, short, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented cluster.yaml (newest supported Kubernetes) and its JSON Schema into
    /// DIR; never overwrites.
    Init {
        /// Directory to write cluster.yaml into.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Print the JSON Schema of cluster.yaml, for editors and other tools.
    Schema,
    /// Parse, validate and lint a cluster description; writes nothing.
    Check(ConfigArgs),
    /// Show, per node, what `build` will produce: addresses, SANs, files and modes.
    Plan {
        #[command(flatten)]
        config: ConfigArgs,
        /// Secrets directory to compare against (read only) [default: secrets/<cluster>].
        #[arg(long, value_name = "DIR")]
        secrets: Option<PathBuf>,
        /// Output format; the JSON shape is documented in the README and versioned.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Create missing secrets and write one signed, reproducible tarball per master.
    Build(BuildArgs),
    /// Certificate lifecycle: expiry table, offline renewal.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Encryption-at-rest key lifecycle.
    Encryption {
        #[command(subcommand)]
        command: EncryptionCommand,
    },
    /// What changes on a node between two bundle generations: flags, files, restart.
    /// Without OLD and NEW: the previous and the current build, for every node.
    Diff {
        /// The older bundle.
        #[arg(requires = "new")]
        old: Option<PathBuf>,
        /// The newer bundle.
        new: Option<PathBuf>,
        /// The cluster description whose output to compare [default: cluster.yaml].
        #[arg(long, value_name = "FILE", conflicts_with = "old")]
        config: Option<PathBuf>,
        /// Output folder to compare with its previous generation [default: bundles/<cluster>
        /// beside cluster.yaml].
        #[arg(long, value_name = "DIR", conflicts_with = "old")]
        out: Option<PathBuf>,
        #[command(flatten)]
        pin: PinArgs,
        /// Compare without checking signatures; the output says UNVERIFIED.
        #[arg(long, conflicts_with_all = ["fingerprint", "pubkey"])]
        unverified: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Check a bundle: signature, entries, checksums, provenance, air gap. Exit 3 on failure.
    Verify {
        /// The bundle, e.g. bundles/prod-eu1/cp1.tar.gz; its signature is TARBALL.sig.
        tarball: PathBuf,
        #[command(flatten)]
        pin: PinArgs,
        /// Accept a signature by a key neither --fingerprint nor --pubkey pinned (it is
        /// still checked, and its fingerprint printed).
        #[arg(long)]
        allow_unpinned: bool,
    },
}

/// How the bundle signing key is pinned: the key lying next to a tarball is replaceable
/// with it, so it is trusted only when its fingerprint or the file itself comes from you.
#[derive(Debug, Clone, clap::Args)]
pub struct PinArgs {
    /// The signing key's fingerprint as `build` printed it (sha256 of the public key DER;
    /// `openssl pkey -pubin -in signing.pub -outform DER | sha256sum` shows it).
    #[arg(long, value_name = "SHA256")]
    pub fingerprint: Option<String>,
    /// A signing public key you keep yourself [default: signing.pub beside the tarball,
    /// trusted only with --fingerprint].
    #[arg(long, value_name = "FILE")]
    pub pubkey: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Every CA and leaf per node with expiry, time left and issuer; warns under 30 days.
    Expiry {
        #[command(flatten)]
        config: ConfigArgs,
        /// Secrets directory to read (never written) [default: secrets/<cluster>].
        #[arg(long, value_name = "DIR")]
        secrets: Option<PathBuf>,
        /// Exit 1 if any certificate has fewer days left.
        #[arg(long, value_name = "DAYS")]
        fail_under: Option<i64>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Re-issue leaves from the stored CAs; the next `build` ships them.
    Renew(RenewArgs),
}

/// Which leaves `certs renew` re-issues, and from which cluster.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["certificates", "all"])))]
pub struct RenewArgs {
    /// The certificates: NAME on every node that has it (`apiserver`), or NODE/NAME on one
    /// node (`cp1/apiserver`).
    #[arg(value_name = "NAME")]
    pub certificates: Vec<CertSelector>,
    /// Renew every leaf of every node.
    #[arg(long)]
    pub all: bool,
    /// Keep the existing private keys (default: new keys).
    #[arg(long)]
    pub reuse_keys: bool,
    /// The cluster description.
    #[arg(long, value_name = "FILE", default_value = "cluster.yaml")]
    pub config: PathBuf,
    /// Secrets directory holding the CAs and the leaves [default: secrets/<cluster>].
    #[arg(long, value_name = "DIR")]
    pub secrets: Option<PathBuf>,
    /// Accept a Kubernetes version newer than the version table; renders with the newest rules.
    #[arg(long)]
    pub allow_untested_version: bool,
}

/// A certificate named on the command line: `NAME` on every node that has it, or
/// `NODE/NAME` on one node. Whether the node and the name exist is for the plan to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSelector {
    Everywhere { cert: String },
    OnNode { node: String, cert: String },
}

impl std::str::FromStr for CertSelector {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        // Earlier releases took the config here, recognised by this suffix: such a command
        // line is told where the file goes now. No certificate name ends like this.
        if text.ends_with(".yaml") || text.ends_with(".yml") {
            return Err(format!(
                "NAME is a certificate (`apiserver` or `cp1/apiserver`); pass the cluster \
                 description as --config {text}"
            ));
        }
        match text.split_once('/') {
            None if !text.is_empty() => Ok(Self::Everywhere { cert: text.into() }),
            Some((node, cert)) if !node.is_empty() && !cert.is_empty() && !cert.contains('/') => {
                Ok(Self::OnNode {
                    node: node.into(),
                    cert: cert.into(),
                })
            }
            _ => Err("not NAME or NODE/NAME (e.g. `apiserver` or `cp1/apiserver`)".into()),
        }
    }
}

/// As it was written: `apiserver` or `cp1/apiserver`.
impl std::fmt::Display for CertSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Everywhere { cert } => f.write_str(cert),
            Self::OnNode { node, cert } => write!(f, "{node}/{cert}"),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum EncryptionCommand {
    /// Advance the offline key rotation one phase: add the new key second, make it first,
    /// then (after every secret was rewritten) remove the old one.
    Rotate {
        #[command(flatten)]
        config: ConfigArgs,
        /// Secrets directory holding the encryption keys [default: secrets/<cluster>].
        #[arg(long, value_name = "DIR")]
        secrets: Option<PathBuf>,
        /// Confirm that every secret was rewritten with the new key (needed for phase 3).
        #[arg(long)]
        confirm_rewritten: bool,
        /// Start another rotation after a finished one (phase 3 built): a new key is added.
        #[arg(long)]
        start_new_rotation: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Secrets directory: created on the first build, then reused [default: secrets/<cluster>].
    #[arg(long, value_name = "DIR")]
    pub secrets: Option<PathBuf>,
    /// Output directory [default: bundles/<cluster>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Build only this master (repeatable); other masters' bundles in the output are kept.
    #[arg(long = "node", value_name = "NAME")]
    pub nodes: Vec<String>,
    /// Sign with this ECDSA P-256 PKCS#8 key instead of secrets/<cluster>/signing-key.pem.
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// Build into an output whose bundles belong to another cluster CA, replacing them.
    #[arg(long)]
    pub replace_cluster_identity: bool,
    /// Build although kubernetesVersion goes back a minor, or forward more than one, from
    /// the bundles in the output (upstream upgrades one minor at a time).
    #[arg(long)]
    pub allow_version_skew: bool,
    /// Build although the service-account issuer or network.dnsDomain differs from the
    /// bundles in the output (every service-account token issued so far stops working).
    #[arg(long)]
    pub allow_issuer_change: bool,
}

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// The cluster description.
    #[arg(default_value = "cluster.yaml")]
    pub config: PathBuf,
    /// Accept a Kubernetes version newer than the version table; renders with the newest rules.
    #[arg(long)]
    pub allow_untested_version: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn a_certificate_is_named_alone_or_on_one_node() {
        assert_eq!(
            "apiserver".parse(),
            Ok(CertSelector::Everywhere {
                cert: "apiserver".into()
            })
        );
        assert_eq!(
            "cp1/apiserver".parse(),
            Ok(CertSelector::OnNode {
                node: "cp1".into(),
                cert: "apiserver".into()
            })
        );
        for form in ["apiserver", "cp1/apiserver"] {
            let parsed: CertSelector = form.parse().unwrap();
            assert_eq!(parsed.to_string(), form, "shown as written");
        }
        for malformed in ["", "/apiserver", "cp1/", "cp1/apiserver/key"] {
            let why = malformed.parse::<CertSelector>().unwrap_err();
            assert!(why.contains("NODE/NAME"), "{malformed:?}: {why}");
        }
    }

    #[test]
    fn a_config_file_among_the_names_points_to_config() {
        for file in ["cluster.yaml", "prod/cluster.yml"] {
            let why = file.parse::<CertSelector>().unwrap_err();
            assert!(why.contains(&format!("--config {file}")), "{why}");
        }
    }

    #[test]
    fn renew_takes_names_or_all_and_the_config_by_option() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from([&["kube-bundle", "certs", "renew"], args].concat()).map(|cli| {
                match cli.command {
                    Command::Certs {
                        command: CertsCommand::Renew(args),
                    } => args,
                    other => panic!("{other:?}"),
                }
            })
        };
        let args = parse(&["cp1/apiserver", "admin", "--config", "prod.yaml"]).unwrap();
        assert_eq!(args.certificates.len(), 2);
        assert_eq!(args.config, PathBuf::from("prod.yaml"));
        assert!(!args.all);
        let args = parse(&["--all"]).unwrap();
        assert!(args.all && args.certificates.is_empty());
        assert_eq!(args.config, PathBuf::from("cluster.yaml"));
        assert!(parse(&[]).is_err(), "names or --all");
        assert!(parse(&["--all", "apiserver"]).is_err(), "not both");
    }
}
