//! The command line's shape: clap types, one per command and option group, and the two
//! things settled before any command runs (the `--version` text, the `--color` choice).
//!
//! What each command does is in `commands`, one module per command; this file is what
//! `--help`, the man pages and the shell completions show, so it can be read without the
//! wiring.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::LazyLock;

use clap::{Parser, Subcommand, ValueEnum};

use crate::versions::{NEWEST_MINOR, OLDEST_MINOR};

/// Compile a Kubernetes kube-apiserver tier into one signed, reproducible tarball per master.
#[derive(Debug, Parser)]
#[command(name = "kube-bundle", version = version_text(), about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub verbosity: Verbosity,
    /// When to color diagnostics, help and usage errors.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "WHEN",
        default_value_t = ColorWhen::Auto
    )]
    pub color: ColorWhen,
    /// None prints the help: without a command there is nothing to do, which is not a
    /// usage error.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `--version`: what was built, from which commit, for which Kubernetes releases.
fn version_text() -> &'static str {
    static TEXT: LazyLock<String> = LazyLock::new(|| {
        format!(
            "{} (commit {}, Kubernetes v1.{OLDEST_MINOR} – v1.{NEWEST_MINOR})",
            env!("CARGO_PKG_VERSION"),
            env!("KUBE_BUNDLE_COMMIT"),
        )
    });
    &TEXT
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// Color a terminal, unless NO_COLOR is set.
    Auto,
    /// Color even a pipe or a file, and despite NO_COLOR.
    Always,
    /// Never color.
    Never,
}

impl ColorWhen {
    /// Whether the diagnostics on stderr are colored.
    pub fn colors_stderr(self) -> bool {
        self.decide(
            std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty()),
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
        )
    }

    fn decide(self, no_color_set: bool, stderr_is_terminal: bool) -> bool {
        match self {
            Self::Auto => !no_color_set && stderr_is_terminal,
            Self::Always => true,
            Self::Never => false,
        }
    }

    /// The same choice for clap's own help and usage errors (its `auto` also honours
    /// NO_COLOR and asks whether the stream it writes to is a terminal).
    pub fn for_clap(self) -> clap::ColorChoice {
        match self {
            Self::Auto => clap::ColorChoice::Auto,
            Self::Always => clap::ColorChoice::Always,
            Self::Never => clap::ColorChoice::Never,
        }
    }

    /// `--color` read from the raw arguments, before clap parses them: clap prints its
    /// help and usage errors while parsing, so it must be told the choice first. An
    /// invalid or missing value counts as `auto` here; clap reports the invalid one.
    pub fn in_raw_args(args: &[OsString]) -> Self {
        let mut choice = Self::Auto;
        let mut args = args.iter().skip(1).map(|arg| arg.to_str());
        while let Some(arg) = args.next() {
            let value = match arg {
                // Everything after `--` is an operand, never an option.
                Some("--") => break,
                Some("--color") => args.next().flatten(),
                Some(other) => other.strip_prefix("--color="),
                None => None,
            };
            if let Some(parsed) = value.and_then(|value| Self::from_str(value, false).ok()) {
                choice = parsed;
            }
        }
        choice
    }
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
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
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
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Give someone access: a kubeconfig with a new client certificate from the cluster CA.
    Kubeconfig {
        #[command(subcommand)]
        command: KubeconfigCommand,
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
    /// Print a shell's completion script, e.g. `source <(kube-bundle completions bash)`.
    Completions {
        /// The shell to complete in.
        shell: Shell,
    },
    /// Write the man pages: one per command into DIR, or without --dir the top page on
    /// stdout (`kube-bundle man | man -l -`).
    Man {
        /// Folder for kube-bundle.1, kube-bundle-build.1 and the others (created if missing).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// The shells `completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// `source <(kube-bundle completions bash)` in ~/.bashrc.
    Bash,
    /// Saved as `_kube-bundle` in a folder on $fpath.
    Zsh,
    /// Saved as ~/.config/fish/completions/kube-bundle.fish.
    Fish,
    /// `kube-bundle completions powershell | Out-String | Invoke-Expression` in $PROFILE.
    #[value(name = "powershell")]
    PowerShell,
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
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
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

#[derive(Debug, Subcommand)]
pub enum KubeconfigCommand {
    /// Issue a client certificate for USER from the stored cluster CA (never stored itself)
    /// and write a kubeconfig holding it; rights come from RBAC bindings to USER or GROUP.
    User(UserArgs),
}

#[derive(Debug, clap::Args)]
pub struct UserArgs {
    /// The user name the apiserver sees (the certificate's CN), e.g. `alice` or
    /// `ci@example.com`.
    #[arg(value_name = "USER")]
    pub user: String,
    /// The group the apiserver sees (the certificate's O).
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// How long the certificate is valid (e.g. 8h, 720h). A certificate cannot be revoked,
    /// only its RBAC bindings: keep it short.
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub validity: String,
    /// The apiserver URL in the kubeconfig [default: https://<controlPlaneEndpoint>, else the
    /// first master's address].
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Where to write the kubeconfig, mode 0600; never overwritten [default: USER.kubeconfig].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Allow a `system:` user or group, such as system:masters (which no RBAC change can
    /// revoke).
    #[arg(long)]
    pub allow_system_identity: bool,
    /// The cluster description.
    #[arg(long, value_name = "FILE", default_value = "cluster.yaml")]
    pub config: PathBuf,
    /// Secrets directory holding the cluster CA [default: secrets/<cluster>].
    #[arg(long, value_name = "DIR")]
    pub secrets: Option<PathBuf>,
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
    /// For people to read.
    Text,
    /// JSON, for programs.
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

    /// Every command, option, positional argument and option value says what it is for,
    /// in `--help`, the man pages and the completions alike.
    #[test]
    fn everything_on_the_command_line_is_described() {
        use clap::CommandFactory;
        fn walk(command: &clap::Command, path: &str, undescribed: &mut Vec<String>) {
            if command.get_about().is_none() {
                undescribed.push(path.to_owned());
            }
            // clap's own --help and --version describe themselves.
            let arguments = command
                .get_arguments()
                .filter(|arg| !matches!(arg.get_id().as_str(), "help" | "version"));
            for arg in arguments {
                let name = format!("{path} {}", arg.get_id());
                if arg.get_help().is_none() {
                    undescribed.push(name.clone());
                }
                for value in arg.get_possible_values() {
                    if value.get_help().is_none() {
                        undescribed.push(format!("{name}={}", value.get_name()));
                    }
                }
            }
            for subcommand in command.get_subcommands() {
                walk(
                    subcommand,
                    &format!("{path} {}", subcommand.get_name()),
                    undescribed,
                );
            }
        }
        let mut undescribed = Vec::new();
        let mut definition = Cli::command();
        // Built, the tree holds what clap adds (the global --color in every command).
        definition.build();
        walk(&definition, "kube-bundle", &mut undescribed);
        assert_eq!(undescribed, Vec::<String>::new(), "without a description");
    }

    #[test]
    fn every_output_option_is_also_dash_o() {
        use clap::CommandFactory;
        fn walk(command: &clap::Command, found: &mut usize) {
            for arg in command.get_arguments() {
                if arg.get_long() == Some("output") {
                    assert_eq!(arg.get_short(), Some('o'), "{}", command.get_name());
                    *found += 1;
                }
            }
            command.get_subcommands().for_each(|sub| walk(sub, found));
        }
        let mut found = 0;
        walk(&Cli::command(), &mut found);
        assert_eq!(found, 3, "plan, certs expiry and diff");
        let cli = Cli::try_parse_from(["kube-bundle", "diff", "-o", "json"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Diff {
                output: OutputFormat::Json,
                ..
            })
        ));
    }

    #[test]
    fn the_version_names_the_commit_and_the_supported_kubernetes_range() {
        let version = version_text();
        assert!(version.starts_with(env!("CARGO_PKG_VERSION")), "{version}");
        assert!(version.contains("(commit "), "{version}");
        assert!(
            version.contains(&format!("Kubernetes v1.{OLDEST_MINOR} – v1.{NEWEST_MINOR}")),
            "{version}"
        );
    }

    #[test]
    fn auto_colors_only_a_terminal_without_no_color() {
        assert!(ColorWhen::Auto.decide(false, true));
        assert!(!ColorWhen::Auto.decide(true, true), "NO_COLOR");
        assert!(!ColorWhen::Auto.decide(false, false), "a pipe or a file");
        assert!(
            ColorWhen::Always.decide(true, false),
            "an explicit choice wins"
        );
        assert!(!ColorWhen::Never.decide(false, true));
    }

    #[test]
    fn the_color_choice_is_read_before_clap_parses() {
        let choice = |args: &[&str]| {
            let args: Vec<OsString> = ["kube-bundle"].iter().chain(args).map(Into::into).collect();
            ColorWhen::in_raw_args(&args)
        };
        assert_eq!(choice(&[]), ColorWhen::Auto);
        assert_eq!(choice(&["--color", "never", "chek"]), ColorWhen::Never);
        assert_eq!(choice(&["plan", "--color=always"]), ColorWhen::Always);
        assert_eq!(
            choice(&["--color", "sometimes"]),
            ColorWhen::Auto,
            "clap says why"
        );
        assert_eq!(choice(&["--color"]), ColorWhen::Auto);
        assert_eq!(
            choice(&["diff", "--", "--color=never"]),
            ColorWhen::Auto,
            "an operand"
        );
        // Whatever the scan finds, clap agrees with it on a valid command line.
        let cli = Cli::try_parse_from(["kube-bundle", "check", "--color", "never"]).unwrap();
        assert_eq!(cli.color, ColorWhen::Never);
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
                    Some(Command::Certs {
                        command: CertsCommand::Renew(args),
                    }) => args,
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
