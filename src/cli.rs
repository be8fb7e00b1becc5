//! The command line (design.md §2): clap types, and the wiring of stages per command.
//!
//! Each command reads cluster.yaml through `config` → `validate`, then runs as many later
//! stages as it needs. Output goes to the writers it is given, never straight to stdout.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};
use rayon::prelude::*;

use time::OffsetDateTime;

use crate::diagnostics;
use crate::error::Error;
use crate::plan::{self, Plan};
use crate::secrets::{Access, SecretStore};
use crate::sign::Signer;
use crate::validate::{Cluster, Severity, ValidateOptions, Validated};
use crate::{bundle, encryption, pki, render};

/// The commented example `init` writes: a modern three-master cluster.
pub const EXAMPLE_CLUSTER_YAML: &str = include_str!("../templates/cluster.yaml");

/// Compile a Kubernetes kube-apiserver tier into one signed, reproducible tarball per master.
#[derive(Debug, Parser)]
#[command(name = "kube-bundle", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented cluster.yaml (newest supported Kubernetes) into DIR; never overwrites.
    Init {
        /// Directory to write cluster.yaml into.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
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
    Diff {
        old: PathBuf,
        new: PathBuf,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Check a bundle: signature, entries, checksums, provenance, air gap. Exit 3 on failure.
    Verify {
        /// The bundle, e.g. bundles/prod-eu1/cp1.tar.gz; its signature is TARBALL.sig.
        tarball: PathBuf,
        /// The signing public key [default: signing.pub beside the tarball].
        #[arg(long, value_name = "FILE")]
        pubkey: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Every CA and leaf per node with expiry, time left and issuer; warns under 30 days.
    Expiry {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long, value_name = "DIR")]
        secrets: Option<PathBuf>,
        /// Exit 1 if any certificate has fewer days left.
        #[arg(long, value_name = "DAYS")]
        fail_under: Option<i64>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Re-issue leaves from the stored CAs; the next `build` ships them.
    Renew {
        /// [CONFIG] then certificate names (`apiserver`, or `cp1/apiserver`).
        #[arg(value_name = "CONFIG|NAME")]
        args: Vec<String>,
        /// Renew every leaf.
        #[arg(long)]
        all: bool,
        /// Keep the existing private keys (default: new keys).
        #[arg(long)]
        reuse_keys: bool,
        #[arg(long, value_name = "DIR")]
        secrets: Option<PathBuf>,
        #[arg(long)]
        allow_untested_version: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum EncryptionCommand {
    /// Advance the offline key rotation one phase: add the new key second, make it first,
    /// then (after every secret was rewritten) remove the old one.
    Rotate {
        #[command(flatten)]
        config: ConfigArgs,
        #[arg(long, value_name = "DIR")]
        secrets: Option<PathBuf>,
        /// Confirm that every secret was rewritten with the new key (needed for phase 3).
        #[arg(long)]
        confirm_rewritten: bool,
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

/// Runs one command. `out` receives the command's result, `err` its warnings.
pub fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Error> {
    match cli.command {
        Command::Init { dir } => init(&dir, out),
        Command::Build(args) => build(&args, out, err),
        Command::Certs { command } => certs(command, out, err),
        Command::Encryption {
            command:
                EncryptionCommand::Rotate {
                    config,
                    secrets,
                    confirm_rewritten,
                },
        } => rotate(&config, secrets, confirm_rewritten, out, err),
        Command::Diff { old, new, output } => {
            let diff = crate::diff::diff(&old, &new)?;
            let text = match output {
                OutputFormat::Text => crate::diff::to_text(&diff),
                OutputFormat::Json => {
                    let mut json = serde_json::to_string_pretty(&diff)
                        .map_err(|e| Error::Input(format!("cannot encode the diff: {e}")))?;
                    json.push('\n');
                    json
                }
            };
            write_out(out, &text)
        }
        Command::Verify { tarball, pubkey } => verify(&tarball, pubkey.as_deref(), out),
        Command::Check(args) => {
            let validated = load(&args)?;
            report_warnings(&validated, err)?;
            let cluster = &validated.cluster;
            let warnings = validated.warnings.len();
            write_out(
                out,
                &format!(
                    "{}: cluster {} ({} masters, Kubernetes {}) is valid; {warnings} warning(s)\n",
                    args.config.display(),
                    cluster.name,
                    cluster.masters.len(),
                    cluster.kubernetes_version,
                ),
            )
        }
        Command::Plan {
            config,
            secrets,
            output,
        } => {
            let (validated, plan, store) = prepare(&config, secrets, Access::ReadOnly, &[], err)?;
            let cluster = &validated.cluster;
            let decisions = pki::assess(cluster, &plan, &store, OffsetDateTime::now_utc())?;
            let text = match output {
                OutputFormat::Json => plan_json(&plan, &decisions)?,
                OutputFormat::Text => plan_text(&plan, &decisions),
            };
            write_out(out, &text)
        }
    }
}

fn build(args: &BuildArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Error> {
    let (validated, plan, store) = prepare(
        &args.config,
        args.secrets.clone(),
        Access::ReadWrite,
        &args.nodes,
        err,
    )?;
    let cluster = &validated.cluster;
    let pki = pki::provision(cluster, &plan, &store, OffsetDateTime::now_utc())?;
    let encryption = encryption::keys_for_build(cluster, &store)?;
    let signer = Signer::load_or_create(&store, args.signing_key.as_deref())?;
    let epoch = match source_date_epoch()? {
        Some(epoch) => epoch,
        None => pki.issued_at(),
    };
    let config_bytes =
        std::fs::read(&args.config.config).map_err(|e| Error::io(&args.config.config, e))?;
    let config_sha256 = crate::sign::sha256_hex(&config_bytes);
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("bundles").join(cluster.name.as_str()));
    let staging = Staging::new(&out_dir)?;

    let selected: Vec<&plan::NodePlan> = plan
        .nodes
        .values()
        .filter(|n| args.nodes.is_empty() || args.nodes.contains(&n.name))
        .collect();
    staging.keep_other_nodes(&out_dir, &selected)?;
    let shared = bundle::SharedFiles::new(staging.path().join(".shared"));
    // Nodes are independent: render, compress and sign them in parallel.
    let written = selected
        .par_iter()
        .map(|node| -> Result<(String, String, String), Error> {
            let rendered = render::render_node(cluster, node, &pki, &encryption)?;
            let assembled = bundle::assemble(cluster, node, rendered, &config_sha256, &shared)?;
            let name = format!("{}.tar.gz", node.name);
            let tarball = staging.path().join(&name);
            let digest =
                bundle::write_tarball(&tarball, &node.name, &assembled.tree, epoch, &shared)?;
            let signature = signer.sign_digest(&digest)?;
            write_private(&staging.path().join(format!("{name}.sig")), &signature)?;
            Ok((name, hex::encode(digest), assembled.bundle_id))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let mut digests = BTreeMap::new();
    let mut summary = String::new();
    for (node, (name, digest, bundle_id)) in selected.iter().zip(written) {
        digests.insert(name, digest);
        let decisions = pki.decisions.get(&node.name).into_iter().flatten();
        let changed: Vec<String> = decisions
            .filter(|(_, d)| !matches!(d, pki::Decision::Reuse | pki::Decision::External))
            .map(|(cert, decision)| format!("{cert}: {decision}"))
            .collect();
        let certs = if node.role == plan::Role::Client {
            "client: the HA front only".to_owned()
        } else if changed.is_empty() {
            "certificates reused".to_owned()
        } else {
            changed.join("; ")
        };
        summary.push_str(&format!("{}: bundle {bundle_id} ({certs})\n", node.name));
    }
    shared.close()?;
    staging.finish(cluster, &signer, &digests)?;
    staging.commit(&out_dir)?;
    if args.nodes.is_empty() {
        // Only a build of every master completes a rotation phase.
        encryption::mark_built(&store, &encryption)?;
    }
    summary.push_str(&format!(
        "wrote {}\nsigning key fingerprint (sha256 of the public key DER): {}\n",
        out_dir.display(),
        signer.fingerprint()
    ));
    write_out(out, &summary)
}

fn certs(command: CertsCommand, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Error> {
    match command {
        CertsCommand::Expiry {
            config,
            secrets,
            fail_under,
            output,
        } => {
            let (validated, plan, store) = prepare(&config, secrets, Access::ReadOnly, &[], err)?;
            let cluster = &validated.cluster;
            let certs = pki::inventory(cluster, &plan, &store, OffsetDateTime::now_utc())?;
            if certs.is_empty() {
                return Err(Error::Input(format!(
                    "{} holds no certificates yet: run `kube-bundle build` first",
                    store.dir().display()
                )));
            }
            let text = match output {
                OutputFormat::Json => serde_json::to_string_pretty(&certs)
                    .map(|json| json + "\n")
                    .map_err(|e| Error::Input(format!("cannot encode: {e}")))?,
                OutputFormat::Text => expiry_table(&certs),
            };
            write_out(out, &text)?;
            let worst = certs.iter().map(|c| c.days_left).min().unwrap_or(i64::MAX);
            match fail_under {
                Some(days) if worst < days => Err(Error::Input(format!(
                    "a certificate has {worst} day(s) left, under --fail-under {days}: run                      `kube-bundle certs renew --all`, then build and install"
                ))),
                _ => Ok(()),
            }
        }
        CertsCommand::Renew {
            args,
            all,
            reuse_keys,
            secrets,
            allow_untested_version,
        } => {
            let (config, names) = match args.first() {
                Some(first) if first.ends_with(".yaml") || first.ends_with(".yml") => {
                    (PathBuf::from(first), args[1..].to_vec())
                }
                _ => (PathBuf::from("cluster.yaml"), args.clone()),
            };
            if all != names.is_empty() {
                return Err(Error::Usage(
                    "name the certificates to renew (e.g. `apiserver` or `cp1/apiserver`), or pass --all".into(),
                ));
            }
            let config = ConfigArgs {
                config,
                allow_untested_version,
            };
            let (validated, plan, store) = prepare(&config, secrets, Access::ReadWrite, &[], err)?;
            let cluster = &validated.cluster;
            let renewed = pki::renew(
                cluster,
                &plan,
                &store,
                &names,
                reuse_keys,
                OffsetDateTime::now_utc(),
            )?;
            let mut text: String = renewed
                .iter()
                .map(|name| format!("renewed {name}\n"))
                .collect();
            text.push_str("next: `kube-bundle build`, then install the bundles; only the renewed files change\n");
            write_out(out, &text)
        }
    }
}

fn expiry_table(certs: &[pki::CertificateStatus]) -> String {
    use std::fmt::Write as _;
    let mut text = format!(
        "{:<8} {:<26} {:<12} {:>10}  {}\n",
        "NODE", "CERTIFICATE", "EXPIRES", "DAYS LEFT", "ISSUER"
    );
    for cert in certs {
        let warning = if cert.days_left < 30 {
            "  WARNING: under 30 days"
        } else {
            ""
        };
        let _ = writeln!(
            text,
            "{:<8} {:<26} {:<12} {:>10}  {}{warning}",
            cert.node.as_deref().unwrap_or("(CA)"),
            cert.name,
            cert.not_after.date().to_string(),
            cert.days_left,
            cert.issuer
        );
    }
    text
}

fn rotate(
    config: &ConfigArgs,
    secrets: Option<PathBuf>,
    confirm_rewritten: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let validated = load(config)?;
    report_warnings(&validated, err)?;
    let cluster = &validated.cluster;
    let dir = secrets.unwrap_or_else(|| default_secrets_dir(cluster));
    let store = SecretStore::open(&dir, Access::ReadWrite)?;
    let step = encryption::rotate(cluster, &store, confirm_rewritten)?;
    let masters: Vec<&str> = cluster.masters.iter().map(|m| m.name.as_str()).collect();
    let reload = if cluster.kubernetes_version.minor() >= 26 {
        "each apiserver reloads the config within a minute (--encryption-provider-config-automatic-reload)"
    } else {
        "install.sh restarts each apiserver"
    };
    let (what, next) = match step.phase {
        1 => (
            format!(
                "phase 1/3: new key {} added second: every master can now decrypt with it",
                step.new_key
            ),
            "when every master runs it, run `kube-bundle encryption rotate` again".to_owned(),
        ),
        2 => (
            format!(
                "phase 2/3: new key {} moved first: every master encrypts with it",
                step.new_key
            ),
            format!(
                "when every master runs it, rewrite all secrets:\n    {}\nthen run `kube-bundle encryption rotate --confirm-rewritten`",
                encryption::REWRITE_COMMAND
            ),
        ),
        _ => (
            format!(
                "phase 3/3: old key {} removed from the config (kept in secrets/ as retired)",
                step.old_key
            ),
            "the rotation is complete once every master runs it".to_owned(),
        ),
    };
    write_out(
        out,
        &format!(
            "{what}\nkey order: {}\nnext: `kube-bundle build`, then install on every master one at a time ({}); {reload}; {next}\n",
            step.order.join(", "),
            masters.join(", ")
        ),
    )
}

fn verify(tarball: &Path, pubkey: Option<&Path>, out: &mut dyn Write) -> Result<(), Error> {
    let beside = tarball
        .parent()
        .unwrap_or(Path::new("."))
        .join("signing.pub");
    let pubkey = pubkey.map_or(beside, Path::to_path_buf);
    let mut signature = tarball.as_os_str().to_owned();
    signature.push(".sig");
    let verified = crate::verify::verify(tarball, &pubkey, Path::new(&signature))?;
    write_out(
        out,
        &format!(
            "{}: OK (node {}, bundle {}, {} files; signature, paths, checksums, provenance and air gap checked)\n",
            tarball.display(),
            verified.node,
            verified.bundle_id,
            verified.files
        ),
    )
}

/// SOURCE_DATE_EPOCH (reproducible-builds.org), when set, is every bundle timestamp.
fn source_date_epoch() -> Result<Option<u64>, Error> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(_) => Ok(None),
        Ok(text) => text.trim().parse().map(Some).map_err(|_| {
            Error::Input(format!(
                "SOURCE_DATE_EPOCH={text:?} is not a number of seconds since 1970"
            ))
        }),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut file = crate::secrets::create_private_file(path)?;
    file.write_all(bytes).map_err(|e| Error::io(path, e))
}

/// The output directory being built: a temp dir beside the target, renamed into place
/// only when every bundle is written, so bundles/ never holds a half-written set.
struct Staging {
    dir: tempfile::TempDir,
}

impl Staging {
    fn new(out_dir: &Path) -> Result<Self, Error> {
        let parent = match out_dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let dir = tempfile::Builder::new()
            .prefix(".kube-bundle-staging-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir_in(&parent)
            .map_err(|e| Error::io(&parent, e))?;
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// With --node, the other masters' bundles already in the output stay.
    fn keep_other_nodes(&self, out_dir: &Path, selected: &[&plan::NodePlan]) -> Result<(), Error> {
        let Ok(entries) = std::fs::read_dir(out_dir) else {
            return Ok(());
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(out_dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let node = name
                .strip_suffix(".tar.gz.sig")
                .or_else(|| name.strip_suffix(".tar.gz"));
            if let Some(node) = node
                && !selected.iter().any(|n| n.name == node)
            {
                let target = self.path().join(&name);
                std::fs::copy(entry.path(), &target).map_err(|e| Error::io(&target, e))?;
            }
        }
        Ok(())
    }

    /// signing.pub, INSTALL.md and SHA256SUMS over every tarball and signature.
    /// `digests` holds the tarballs hashed while they were written.
    fn finish(
        &self,
        cluster: &Cluster,
        signer: &Signer,
        digests: &BTreeMap<String, String>,
    ) -> Result<(), Error> {
        let dir = self.path();
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))
        };
        write("signing.pub", signer.public_key_pem().as_bytes())?;
        write(
            "INSTALL.md",
            render::install_guide(cluster, &signer.fingerprint())?.as_bytes(),
        )?;
        let mut sums = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tar.gz") || name.ends_with(".tar.gz.sig") {
                let digest = match digests.get(&name) {
                    Some(digest) => digest.clone(),
                    None => bundle::file_sha256(&entry.path())?,
                };
                sums.push((name, digest));
            }
        }
        let text = crate::sign::checksum_file(sums.iter().map(|(n, h)| (n.as_str(), h.as_str())));
        write("SHA256SUMS", text.as_bytes())
    }

    /// Swaps the finished directory in for the old one.
    fn commit(self, out_dir: &Path) -> Result<(), Error> {
        let staged = self.dir.keep();
        let old = out_dir.with_extension("old");
        if out_dir.exists() {
            let _ = std::fs::remove_dir_all(&old);
            std::fs::rename(out_dir, &old).map_err(|e| Error::io(out_dir, e))?;
        }
        std::fs::rename(&staged, out_dir).map_err(|e| Error::io(out_dir, e))?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        }
        Ok(())
    }
}

/// What most commands start with: the validated cluster (warnings reported), its plan
/// and its secrets store. `only` names masters the command is limited to (`--node`);
/// an unknown one is a usage error, found before anything is opened or created.
fn prepare(
    config: &ConfigArgs,
    secrets: Option<PathBuf>,
    access: Access,
    only: &[String],
    err: &mut dyn Write,
) -> Result<(Validated, Plan, SecretStore), Error> {
    let validated = load(config)?;
    report_warnings(&validated, err)?;
    let plan = plan::plan(&validated.cluster);
    if let Some(unknown) = only.iter().find(|n| !plan.nodes.contains_key(*n)) {
        let known: Vec<&str> = plan.nodes.keys().map(String::as_str).collect();
        return Err(Error::Usage(format!(
            "--node {unknown}: no such master; the masters are {}",
            known.join(", ")
        )));
    }
    let dir = secrets.unwrap_or_else(|| default_secrets_dir(&validated.cluster));
    let store = SecretStore::open(&dir, access)?;
    Ok((validated, plan, store))
}

fn load(args: &ConfigArgs) -> Result<Validated, Error> {
    let options = ValidateOptions {
        allow_untested_version: args.allow_untested_version,
    };
    crate::load_cluster(&args.config, options)
}

/// design.md §2: `secrets/<cluster name>`, relative to the working directory.
fn default_secrets_dir(cluster: &Cluster) -> PathBuf {
    Path::new("secrets").join(cluster.name.as_str())
}

fn report_warnings(validated: &Validated, err: &mut dyn Write) -> Result<(), Error> {
    for finding in &validated.warnings {
        debug_assert_eq!(finding.severity, Severity::Warning);
        write_err(err, &diagnostics::render(finding))?;
    }
    Ok(())
}

fn init(dir: &Path, out: &mut dyn Write) -> Result<(), Error> {
    let path = dir.join("cluster.yaml");
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::Input(format!(
                "{} already exists; kube-bundle init never overwrites a cluster description \
                 (move it away or pick another directory)",
                path.display()
            )));
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    file.write_all(EXAMPLE_CLUSTER_YAML.as_bytes())
        .map_err(|e| Error::io(&path, e))?;
    write_out(
        out,
        &format!(
            "wrote {}: edit masters, network and etcd, then run `kube-bundle check {}`\n",
            path.display(),
            path.display()
        ),
    )
}

/// The plan as JSON, each certificate carrying what this build will do with it.
fn plan_json(plan: &Plan, decisions: &pki::Assessment) -> Result<String, Error> {
    let encode = |e: serde_json::Error| Error::Input(format!("cannot encode the plan: {e}"));
    let mut value = serde_json::to_value(plan).map_err(encode)?;
    for (node, certs) in decisions {
        for (cert, decision) in certs {
            let entry = &mut value["nodes"][node]["certificates"][cert];
            if !entry.is_object() {
                *entry = serde_json::json!({});
            }
            let decision = serde_json::to_value(decision).map_err(encode)?;
            entry["decision"] = decision;
        }
    }
    let mut json = serde_json::to_string_pretty(&value).map_err(encode)?;
    json.push('\n');
    Ok(json)
}

fn plan_text(plan: &Plan, decisions: &pki::Assessment) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "cluster {} · Kubernetes {} · kubernetes service IP {}",
        plan.cluster, plan.kubernetes_version, plan.kubernetes_service_ip
    );
    for node in plan.nodes.values() {
        let client = node.role == plan::Role::Client;
        let role = if client { "client " } else { "" };
        let _ = writeln!(text, "\n{role}node {} ({})", node.name, node.ip);
        if client {
            let _ = writeln!(
                text,
                "  the HA front only: no apiserver, no key, no credential"
            );
        }
        let ips: Vec<String> = node
            .serving_cert_sans
            .ips
            .iter()
            .map(ToString::to_string)
            .collect();
        if !client {
            let _ = writeln!(text, "  serving cert SANs:");
            let _ = writeln!(text, "    DNS: {}", node.serving_cert_sans.dns.join(", "));
            let _ = writeln!(text, "    IP:  {}", ips.join(", "));
        }
        let _ = writeln!(text, "  directories: {}", node.directories.join(", "));
        let _ = writeln!(text, "  files:");
        for (path, file) in &node.files {
            let artifact = serde_json::to_value(file.artifact)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let _ = writeln!(text, "    {:04o}  {path}  ({artifact})", file.mode);
        }
        if client {
            continue;
        }
        let _ = writeln!(text, "  kube-apiserver flags:");
        for (name, flag) in &node.flags {
            let _ = writeln!(
                text,
                "    --{name}={}  [{}]",
                flag.value,
                flag_reason(&flag.reason)
            );
        }
        if !node.dropped_seed_flags.is_empty() {
            let _ = writeln!(text, "  seed flags left out:");
            for (name, dropped) in &node.dropped_seed_flags {
                let _ = writeln!(
                    text,
                    "    --{name}={}  ({})",
                    dropped.seed_value, dropped.why
                );
            }
        }
        let _ = writeln!(text, "  certificates:");
        for (cert, decision) in decisions.get(&node.name).into_iter().flatten() {
            let _ = writeln!(text, "    {cert:<26} {decision}");
        }
    }
    text
}

fn flag_reason(reason: &plan::FlagReason) -> String {
    use plan::FlagReason;
    match reason {
        FlagReason::Seed => "seed".into(),
        FlagReason::Translated(why) => format!("seed, translated: {why}"),
        FlagReason::Kubeadm => "kubeadm default".into(),
        FlagReason::Required(why) => format!("required: {why}"),
        FlagReason::KubeBundle(why) => format!("kube-bundle: {why}"),
        FlagReason::User => "apiserver.extraArgs".into(),
    }
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<(), Error> {
    out.write_all(text.as_bytes())
        .map_err(|e| Error::io(Path::new("<stdout>"), e))
}

fn write_err(err: &mut dyn Write, text: &str) -> Result<(), Error> {
    err.write_all(text.as_bytes())
        .map_err(|e| Error::io(Path::new("<stderr>"), e))
}
