//! The command line: clap types, and the wiring of stages per command.
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
use crate::model::Cluster;
use crate::output::{self, OutputDir, Protected};
use crate::plan::{self, Plan};
use crate::secrets::{Access, SecretStore};
use crate::sign::Signer;
use crate::validate::{Severity, ValidateOptions, Validated};
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
    /// Build into an output whose bundles belong to another cluster CA, replacing them.
    #[arg(long)]
    pub replace_cluster_identity: bool,
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
        Command::Diff {
            old,
            new,
            config,
            out: out_dir,
            pin,
            unverified,
            output,
        } => match (old, new) {
            (Some(old), Some(new)) => {
                let trust = if unverified {
                    Trust::Unverified
                } else {
                    Trust::from_args(&pin)?
                };
                let text = diff_pair(&old, &new, &trust, output, err)?;
                write_out(out, &text)
            }
            _ => diff_generations(config, out_dir, unverified, output, out, err),
        },
        Command::Verify {
            tarball,
            pin,
            allow_unpinned,
        } => verify(&tarball, &Trust::from_args(&pin)?, allow_unpinned, out, err),
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
            let secrets = planned_secrets(cluster, &store)?;
            let text = match output {
                OutputFormat::Json => plan_json(&plan, &decisions, &secrets)?,
                OutputFormat::Text => plan_text(&plan, &decisions, &secrets),
            };
            write_out(out, &text)
        }
    }
}

fn build(args: &BuildArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<(), Error> {
    if args.replace_cluster_identity && !args.nodes.is_empty() {
        return Err(Error::Usage(
            "--replace-cluster-identity rebuilds every node: drop --node, so no bundle of \
             the old identity stays beside the new ones"
                .into(),
        ));
    }
    let (validated, plan) = load_and_plan(&args.config, &args.nodes, err)?;
    let cluster = &validated.cluster;
    let config_path = absolute(&args.config.config)?;
    let secrets_dir = secrets_folder(&args.config.config, cluster, args.secrets.as_deref())?;
    let out_path = match &args.out {
        Some(dir) => dir.clone(),
        None => config_folder(&args.config.config)?
            .join("bundles")
            .join(cluster.name.as_str()),
    };
    let working = absolute(Path::new("."))?;
    let output = OutputDir::claim(
        &out_path,
        &[
            Protected {
                what: "the current folder",
                path: &working,
                output_may_nest: true,
            },
            Protected {
                what: "cluster.yaml",
                path: &config_path,
                output_may_nest: true,
            },
            Protected {
                what: "the secrets folder",
                path: &secrets_dir,
                output_may_nest: false,
            },
        ],
    )?;
    write_err(
        err,
        &format!(
            "secrets: {}\noutput:  {}\n",
            secrets_dir.display(),
            output.path().display()
        ),
    )?;
    // Decided before anything is written: a build must not mint a CA into a folder
    // whose bundles belong to another one.
    let identity =
        pki::cluster_identity(cluster, &SecretStore::open(&secrets_dir, Access::ReadOnly)?)?;
    check_output_identity(
        &output,
        cluster,
        &identity,
        &secrets_dir,
        args.replace_cluster_identity,
    )?;
    let staging = output.stage()?;

    let store = open_store(&secrets_dir, Access::ReadWrite, err)?;
    // Another build may have created the CA between the first look and the lock.
    let locked_identity = pki::cluster_identity(cluster, &store)?;
    if locked_identity != identity {
        check_output_identity(
            &output,
            cluster,
            &locked_identity,
            &secrets_dir,
            args.replace_cluster_identity,
        )?;
    }
    let identity = locked_identity;
    let pki = pki::provision(cluster, &plan, &store, OffsetDateTime::now_utc())?;
    let ca_fingerprint = pki.ca_fingerprint()?;
    match &identity {
        pki::Identity::New => write_err(
            err,
            &format!(
                "creating a NEW cluster identity in {}: CA fingerprint {ca_fingerprint}; \
                 bundles built from it are trusted by no existing cluster\n",
                store.dir().display()
            ),
        )?,
        pki::Identity::Imported(_) => write_err(
            err,
            &format!(
                "imported the cluster CA into {}: CA fingerprint {ca_fingerprint}\n",
                store.dir().display()
            ),
        )?,
        pki::Identity::Stored(_) => {}
    }
    let encryption = encryption::keys_for_build(cluster, &store)?;
    let signer = Signer::load_or_create(&store, args.signing_key.as_deref())?;
    let source_date_epoch = source_date_epoch()?;
    let config_bytes = std::fs::read(&config_path).map_err(|e| Error::io(&config_path, e))?;
    let config_sha256 = crate::sign::sha256_hex(&config_bytes);

    let selected: Vec<&plan::NodePlan> = plan
        .nodes
        .values()
        .filter(|n| args.nodes.is_empty() || args.nodes.contains(&n.name))
        .collect();
    keep_other_nodes(output.path(), staging.path(), &plan, &selected, &signer)?;
    let shared = bundle::SharedFiles::new(staging.path().join(".shared"));
    // Nodes are independent: render, compress and sign them in parallel.
    let written = selected
        .par_iter()
        .map(|node| -> Result<(String, String, String), Error> {
            let rendered = render::render_node(cluster, node, &pki, &encryption)?;
            let contents = bundle::contents(&node.name, rendered, &shared)?;
            let documents = render::documents(&render::BundleFacts {
                cluster,
                node,
                bundle_id: &contents.bundle_id,
                manifests: contents.manifests.clone(),
            })?;
            let assembled =
                bundle::assemble(cluster, node, contents, documents, &config_sha256, &shared)?;
            let name = format!("{}.tar.gz", node.name);
            let tarball = staging.path().join(&name);
            let epoch = source_date_epoch.unwrap_or_else(|| pki.issued_at(&node.name));
            let digest =
                bundle::write_tarball(&tarball, &node.name, &assembled.tree, epoch, &shared)?;
            let signature = signer.sign_digest(&digest)?;
            write_private(&staging.path().join(format!("{name}.sig")), &signature)?;
            Ok((name, hex::encode(digest), assembled.bundle_id))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    shared.close()?;
    let mut digests = BTreeMap::new();
    let mut summary = String::new();
    for (node, (name, digest, bundle_id)) in selected.iter().zip(written) {
        let generation = generation_change(output.path(), staging.path(), &name, &digest)?;
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
        summary.push_str(&format!(
            "{}: {generation}; bundle {bundle_id} ({certs})\n",
            node.name
        ));
    }
    for node in bundled_nodes(output.path())? {
        if !plan.nodes.contains_key(&node) {
            summary.push_str(&format!(
                "{node}: removed: no longer in cluster.yaml; its bundle and signature left \
                 the output\n"
            ));
        }
    }
    finish_output(staging.path(), cluster, &signer, &digests)?;
    output.commit(
        staging,
        &output::Marker::new(
            cluster.name.as_str(),
            &ca_fingerprint,
            store.dir(),
            &signer.fingerprint(),
        ),
    )?;
    if args.nodes.is_empty() {
        // Only a build of every master completes a rotation phase.
        encryption::mark_built(&store, &encryption)?;
    }
    // After the swap, so a failed build never takes credentials from bundles that stay.
    let today = OffsetDateTime::now_utc().date().to_string();
    for node in store.stored_nodes()? {
        if !plan.nodes.contains_key(&node) {
            let retired = store.retire_node(&node, &today)?;
            summary.push_str(&format!(
                "{node}: its credentials (keys included) moved to {}: kept, never deleted; \
                 revoke its admin client certificate if the node was lost\n",
                retired.display()
            ));
        }
    }
    summary.push_str(&format!("wrote {}\n", output.path().display()));
    if output.previous().is_dir() {
        summary.push_str(&format!(
            "kept the generation before in {} (`kube-bundle diff` compares the two)\n",
            output.previous().display()
        ));
    }
    summary.push_str(&format!(
        "signing key fingerprint (sha256 of the public key DER): {}\n",
        signer.fingerprint()
    ));
    write_out(out, &summary)
}

/// `diff` without bundles: the previous generation against the current one, per node.
fn diff_generations(
    config: Option<PathBuf>,
    out_dir: Option<PathBuf>,
    unverified: bool,
    format: OutputFormat,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let current = match out_dir {
        Some(dir) => absolute(&dir)?,
        None => {
            let config = config.unwrap_or_else(|| PathBuf::from("cluster.yaml"));
            // Only the cluster's name is needed; a version newer than the table is fine.
            let validated = load(&ConfigArgs {
                config: config.clone(),
                allow_untested_version: true,
            })?;
            absolute(
                &config_folder(&config)?
                    .join("bundles")
                    .join(validated.cluster.name.as_str()),
            )?
        }
    };
    let previous = output::previous_of(&current);
    write_err(
        err,
        &format!("comparing {} → {}\n", previous.display(), current.display()),
    )?;
    if !previous.is_dir() {
        return Err(Error::Input(format!(
            "{}: no previous generation to compare with; it appears after the second \
             `kube-bundle build` into {}",
            previous.display(),
            current.display()
        )));
    }
    // Each generation is checked against the signing key its own marker recorded when
    // this host built it.
    let trust = |generation: &Path| -> Result<Trust, Error> {
        if unverified {
            return Ok(Trust::Unverified);
        }
        let marker = output::read_marker(generation)?.ok_or_else(|| {
            Error::Input(format!(
                "{}: no {} marker; kube-bundle did not write this folder",
                generation.display(),
                output::MARKER_FILE
            ))
        })?;
        Ok(Trust::Fingerprint {
            fingerprint: marker.signing_key_fingerprint,
            pubkey: None,
        })
    };
    let (old_trust, new_trust) = (trust(&previous)?, trust(&current)?);
    let mut nodes: Vec<String> = bundled_nodes(&previous)?;
    nodes.extend(bundled_nodes(&current)?);
    nodes.sort();
    nodes.dedup();
    let mut text = String::new();
    let mut json = serde_json::Map::new();
    for node in nodes {
        let name = format!("{node}.tar.gz");
        let (old, new) = (previous.join(&name), current.join(&name));
        let (line, value) = match (old.is_file(), new.is_file()) {
            (true, true) => {
                let diff = verified_diff((&old, &old_trust), (&new, &new_trust))?;
                let value = serde_json::to_value(&diff)
                    .map_err(|e| Error::Input(format!("cannot encode the diff: {e}")))?;
                (crate::diff::to_text(&diff), value)
            }
            (false, _) => (
                format!("node {node}: new in this generation\n"),
                serde_json::json!({ "change": "added" }),
            ),
            (true, false) => (
                format!("node {node}: removed in this generation\n"),
                serde_json::json!({ "change": "removed" }),
            ),
        };
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&line);
        json.insert(node, value);
    }
    match format {
        OutputFormat::Text => write_out(out, &text),
        OutputFormat::Json => write_out(out, &to_json(&json)?),
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<String, Error> {
    serde_json::to_string_pretty(value)
        .map(|json| json + "\n")
        .map_err(|e| Error::Input(format!("cannot encode the output: {e}")))
}

/// Refuses to mix two cluster identities in one output unless the operator says so.
fn check_output_identity(
    output: &OutputDir,
    cluster: &Cluster,
    identity: &pki::Identity,
    secrets_dir: &Path,
    replace: bool,
) -> Result<(), Error> {
    let Some(marker) = output.marker()? else {
        return Ok(());
    };
    let same_identity = identity.fingerprint() == Some(marker.ca_fingerprint.as_str());
    if same_identity && marker.cluster == cluster.name.as_str() || replace {
        return Ok(());
    }
    let ours = match identity {
        pki::Identity::New => "a NEW CA (no CA stored yet)".to_owned(),
        other => format!("CA {}", other.fingerprint().unwrap_or_default()),
    };
    Err(Error::Input(format!(
        "{}: holds bundles of cluster {} with CA {} built from {}, but this build uses {ours} \
         from {}. Installing them would make every node and client distrust the others. If \
         the secrets folder is wrong, pass the right one with --secrets; if replacing the \
         cluster identity is intended, pass --replace-cluster-identity",
        output.path().display(),
        marker.cluster,
        marker.ca_fingerprint,
        marker.secrets.display(),
        secrets_dir.display()
    )))
}

/// Node names with a bundle in an output folder.
fn bundled_nodes(dir: &Path) -> Result<Vec<String>, Error> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut nodes = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if let Some(node) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.strip_suffix(".tar.gz"))
        {
            nodes.push(node.to_owned());
        }
    }
    nodes.sort();
    Ok(nodes)
}

/// new / unchanged / changed (and which files) against the current generation.
fn generation_change(
    current: &Path,
    staging: &Path,
    name: &str,
    digest: &str,
) -> Result<String, Error> {
    let old = current.join(name);
    if !old.is_file() {
        return Ok("new".into());
    }
    if bundle::file_sha256(&old)? == digest {
        return Ok("unchanged".into());
    }
    // The old bundle is ours but may be damaged; the new one is complete either way.
    match crate::diff::diff(&old, &staging.join(name)) {
        Ok(diff) => {
            let files: Vec<&str> = diff.files.iter().map(|f| f.path.as_str()).collect();
            Ok(format!("changed ({})", files.join(", ")))
        }
        Err(_) => Ok("changed (the previous bundle could not be read)".into()),
    }
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
                    "a certificate has {worst} day(s) left, under --fail-under {days}: run \
                     `kube-bundle certs renew --all`, then build and install"
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
    let dir = secrets_folder(&config.config, cluster, secrets.as_deref())?;
    write_err(err, &format!("secrets: {}\n", dir.display()))?;
    let store = open_store(&dir, Access::ReadWrite, err)?;
    let step = encryption::rotate(cluster, &store, confirm_rewritten)?;
    let masters: Vec<&str> = cluster.masters.iter().map(|m| m.name.as_str()).collect();
    let automatic_reload = crate::versions::flag("encryption-provider-config-automatic-reload")
        .is_some_and(|f| f.accepted_in(cluster.kubernetes_version.minor()));
    let reload = if automatic_reload {
        "each apiserver reloads the config within a minute (--encryption-provider-config-automatic-reload)"
    } else {
        "install.sh restarts each apiserver"
    };
    let (what, next) = match step.phase {
        encryption::RotationPhase::NewKeyAdded => (
            format!(
                "phase 1/3: new key {} added second: every master can now decrypt with it",
                step.new_key
            ),
            "when every master runs it, run `kube-bundle encryption rotate` again".to_owned(),
        ),
        encryption::RotationPhase::NewKeyFirst => (
            format!(
                "phase 2/3: new key {} moved first: every master encrypts with it",
                step.new_key
            ),
            format!(
                "when every master runs it, rewrite all secrets:\n    {}\nthen run `kube-bundle encryption rotate --confirm-rewritten`",
                encryption::REWRITE_COMMAND
            ),
        ),
        encryption::RotationPhase::OldKeyRemoved => (
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

/// How `verify` and `diff` trust a bundle's signing key.
enum Trust {
    /// The key's fingerprint, as the operator recorded it; the key file may lie anywhere.
    Fingerprint {
        fingerprint: String,
        pubkey: Option<PathBuf>,
    },
    /// A key file the operator keeps.
    KeyFile(PathBuf),
    /// Whatever signing.pub lies beside the tarball: checked, but proves nothing alone.
    Unpinned,
    /// `diff --unverified`: no signature check at all.
    Unverified,
}

impl Trust {
    fn from_args(pin: &PinArgs) -> Result<Self, Error> {
        match (&pin.fingerprint, &pin.pubkey) {
            (Some(text), pubkey) => Ok(Self::Fingerprint {
                fingerprint: crate::sign::normalize_fingerprint(text)
                    .map_err(|why| Error::Usage(format!("--fingerprint {text:?}: {why}")))?,
                pubkey: pubkey.clone(),
            }),
            (None, Some(pubkey)) => Ok(Self::KeyFile(pubkey.clone())),
            (None, None) => Ok(Self::Unpinned),
        }
    }
}

/// Verifies `tarball` under `trust`; `None` for `Trust::Unverified`.
fn verify_bundle(tarball: &Path, trust: &Trust) -> Result<Option<crate::verify::Verified>, Error> {
    let beside = || {
        tarball
            .parent()
            .unwrap_or(Path::new("."))
            .join("signing.pub")
    };
    let (pubkey, pinned) = match trust {
        Trust::Unverified => return Ok(None),
        Trust::Fingerprint {
            fingerprint,
            pubkey,
        } => (
            pubkey.clone().unwrap_or_else(beside),
            Some(fingerprint.as_str()),
        ),
        Trust::KeyFile(pubkey) => (pubkey.clone(), None),
        Trust::Unpinned => (beside(), None),
    };
    let mut signature = tarball.as_os_str().to_owned();
    signature.push(".sig");
    crate::verify::verify(tarball, &pubkey, Path::new(&signature), pinned).map(Some)
}

/// The message for a key nobody pinned, and how to pin it.
fn unpinned_refusal(fingerprint: &str) -> Error {
    Error::Verification(format!(
        "the signature is good, but by a key you did not pin ({fingerprint}): whoever \
         replaced the tarball could have replaced signing.pub with it. Compare it with the \
         fingerprint you recorded at the first build and pass --fingerprint, or pass \
         --pubkey with the signing.pub you keep; --allow-unpinned accepts it as is"
    ))
}

fn verify(
    tarball: &Path,
    trust: &Trust,
    allow_unpinned: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let Some(verified) = verify_bundle(tarball, trust)? else {
        return Err(Error::Usage("verify always checks the signature".into()));
    };
    let key = match trust {
        Trust::Fingerprint { .. } => format!("the pinned key {}", verified.key_fingerprint),
        Trust::KeyFile(path) => format!(
            "the key in {} ({})",
            path.display(),
            verified.key_fingerprint
        ),
        Trust::Unpinned | Trust::Unverified => {
            write_err(
                err,
                &format!(
                    "signature OK with an UNPINNED key {}\n",
                    verified.key_fingerprint
                ),
            )?;
            if !allow_unpinned {
                return Err(unpinned_refusal(&verified.key_fingerprint));
            }
            format!("an UNPINNED key {}", verified.key_fingerprint)
        }
    };
    write_out(
        out,
        &format!(
            "{}: OK (node {}, bundle {}, {} files; signed by {key}; paths, checksums, provenance and air gap checked)\n",
            tarball.display(),
            verified.node,
            verified.bundle_id,
            verified.files
        ),
    )
}

/// The diff of two bundles, each verified under its own trust first.
fn verified_diff(
    (old, old_trust): (&Path, &Trust),
    (new, new_trust): (&Path, &Trust),
) -> Result<crate::diff::BundleDiff, Error> {
    for (tarball, trust) in [(old, old_trust), (new, new_trust)] {
        if let Some(verified) = verify_bundle(tarball, trust)?
            && matches!(trust, Trust::Unpinned)
        {
            return Err(unpinned_refusal(&verified.key_fingerprint));
        }
    }
    crate::diff::diff(old, new)
}

/// `diff OLD NEW`: both verified under `trust` first (or labelled UNVERIFIED).
fn diff_pair(
    old: &Path,
    new: &Path,
    trust: &Trust,
    format: OutputFormat,
    err: &mut dyn Write,
) -> Result<String, Error> {
    let diff = verified_diff((old, trust), (new, trust))?;
    let unverified = matches!(trust, Trust::Unverified);
    if unverified {
        write_err(
            err,
            "UNVERIFIED: signatures were not checked (--unverified)\n",
        )?;
    }
    Ok(match format {
        OutputFormat::Text if unverified => format!("UNVERIFIED\n{}", crate::diff::to_text(&diff)),
        OutputFormat::Text => crate::diff::to_text(&diff),
        OutputFormat::Json => {
            let mut value = serde_json::to_value(&diff)
                .map_err(|e| Error::Input(format!("cannot encode the diff: {e}")))?;
            value["verified"] = serde_json::Value::Bool(!unverified);
            to_json(&value)?
        }
    })
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

/// With --node, the other masters' bundles in the output stay; a node no longer in
/// cluster.yaml is never carried over. Only regular files are carried (a link could
/// point into secrets/), and only when the current key signed them: one output never
/// mixes two signing keys.
fn keep_other_nodes(
    current: &Path,
    staging: &Path,
    plan: &Plan,
    selected: &[&plan::NodePlan],
    signer: &Signer,
) -> Result<(), Error> {
    for node in bundled_nodes(current)? {
        if !plan.nodes.contains_key(&node) || selected.iter().any(|n| n.name == node) {
            continue;
        }
        let tarball = current.join(format!("{node}.tar.gz"));
        let signature = current.join(format!("{node}.tar.gz.sig"));
        for path in [&tarball, &signature] {
            let metadata = std::fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
            if !metadata.is_file() {
                return Err(Error::Input(format!(
                    "{}: not a regular file; kube-bundle wrote none such. Remove it and \
                     build every node",
                    path.display()
                )));
            }
        }
        let signature_bytes = std::fs::read(&signature).map_err(|e| Error::io(&signature, e))?;
        crate::sign::verify_file_signature(&signer.public_key_pem(), &tarball, &signature_bytes)
            .map_err(|why| {
                Error::Input(format!(
                    "--node: {node}'s bundle in the output does not verify with this build's \
                     signing key ({why}); build every node (without --node) so the output \
                     holds one key's signatures"
                ))
            })?;
        for from in [tarball, signature] {
            let to = staging.join(from.file_name().unwrap_or_default());
            std::fs::copy(&from, &to).map_err(|e| Error::io(&from, e))?;
        }
    }
    Ok(())
}

/// signing.pub, INSTALL.md and SHA256SUMS over every tarball and signature.
/// `digests` holds the tarballs hashed while they were written.
fn finish_output(
    dir: &Path,
    cluster: &Cluster,
    signer: &Signer,
    digests: &BTreeMap<String, String>,
) -> Result<(), Error> {
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
    let (validated, plan) = load_and_plan(config, only, err)?;
    let dir = secrets_folder(&config.config, &validated.cluster, secrets.as_deref())?;
    write_err(err, &format!("secrets: {}\n", dir.display()))?;
    let store = open_store(&dir, access, err)?;
    Ok((validated, plan, store))
}

fn load_and_plan(
    config: &ConfigArgs,
    only: &[String],
    err: &mut dyn Write,
) -> Result<(Validated, Plan), Error> {
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
    Ok((validated, plan))
}

fn absolute(path: &Path) -> Result<PathBuf, Error> {
    output::resolve(path).map_err(|e| Error::io(path, e))
}

/// The folder cluster.yaml is in: the defaults for secrets/ and bundles/ resolve against
/// it, like `pki.importCA`, so a build from any working folder finds the same identity.
fn config_folder(config: &Path) -> Result<PathBuf, Error> {
    let config = absolute(config)?;
    Ok(config
        .parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf))
}

/// `--secrets` as given (relative to the working folder), else `secrets/<cluster>` beside
/// cluster.yaml; absolute either way.
fn secrets_folder(
    config: &Path,
    cluster: &Cluster,
    explicit: Option<&Path>,
) -> Result<PathBuf, Error> {
    match explicit {
        Some(dir) => absolute(dir),
        None => absolute(
            &config_folder(config)?
                .join("secrets")
                .join(cluster.name.as_str()),
        ),
    }
}

/// Opens the secrets store and says what a killed earlier run left there and was removed.
fn open_store(dir: &Path, access: Access, err: &mut dyn Write) -> Result<SecretStore, Error> {
    let store = SecretStore::open(dir, access)?;
    let leftovers = store.removed_leftovers();
    if !leftovers.is_empty() {
        write_err(
            err,
            &format!(
                "note: removed {} temp file(s) left by an interrupted kube-bundle run in {}\n",
                leftovers.len(),
                store.dir().display()
            ),
        )?;
    }
    Ok(store)
}

fn load(args: &ConfigArgs) -> Result<Validated, Error> {
    let options = ValidateOptions {
        allow_untested_version: args.allow_untested_version,
    };
    crate::load_cluster(&args.config, options)
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

/// What a build would do with the cluster-wide secrets: whose identity, what it creates.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct PlannedSecrets {
    folder: PathBuf,
    identity: IdentityAction,
    ca_fingerprint: Option<String>,
    /// Files the build creates in the folder.
    create: Vec<String>,
}

/// What a build does about the cluster CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
enum IdentityAction {
    /// No CA stored and none to import: a new one is created.
    New,
    /// `pki.importCA` is copied into the store.
    Import,
    /// The stored CA is used.
    Reuse,
}

fn planned_secrets(cluster: &Cluster, store: &SecretStore) -> Result<PlannedSecrets, Error> {
    let identity = pki::cluster_identity(cluster, store)?;
    let mut create = pki::missing_cluster_secrets(cluster, store)?;
    for file in [encryption::ENCRYPTION_FILE, crate::sign::SIGNING_KEY_FILE] {
        if store.read(file)?.is_none() {
            create.push(file.to_owned());
        }
    }
    Ok(PlannedSecrets {
        folder: store.dir().to_path_buf(),
        identity: match identity {
            pki::Identity::New => IdentityAction::New,
            pki::Identity::Imported(_) => IdentityAction::Import,
            pki::Identity::Stored(_) => IdentityAction::Reuse,
        },
        ca_fingerprint: identity.fingerprint().map(str::to_owned),
        create,
    })
}

/// The plan as JSON, each certificate carrying what this build will do with it.
fn plan_json(
    plan: &Plan,
    decisions: &pki::Assessment,
    secrets: &PlannedSecrets,
) -> Result<String, Error> {
    let encode = |e: serde_json::Error| Error::Input(format!("cannot encode the plan: {e}"));
    let mut value = serde_json::to_value(plan).map_err(encode)?;
    value["secrets"] = serde_json::to_value(secrets).map_err(encode)?;
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

fn plan_text(plan: &Plan, decisions: &pki::Assessment, secrets: &PlannedSecrets) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "cluster {} · Kubernetes {} · kubernetes service IP {}",
        plan.cluster, plan.kubernetes_version, plan.kubernetes_service_ip
    );
    let folder = secrets.folder.display();
    let fingerprint = secrets.ca_fingerprint.as_deref().unwrap_or_default();
    let _ = match secrets.identity {
        IdentityAction::New => writeln!(
            text,
            "secrets: a build creates a NEW cluster identity in {folder} (no CA there yet)"
        ),
        IdentityAction::Import => writeln!(
            text,
            "secrets: a build imports CA {fingerprint} (pki.importCA) into {folder}"
        ),
        IdentityAction::Reuse => writeln!(text, "secrets: {folder} holds CA {fingerprint}"),
    };
    if !secrets.create.is_empty() {
        let _ = writeln!(text, "  to create: {}", secrets.create.join(", "));
    }
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
        if let Some(admin) = node.certificates.get(plan::cert_names::ADMIN) {
            let group = admin.organization.as_deref().unwrap_or_default();
            let why = if group == plan::SUPERUSER_GROUP {
                "a superuser no RBAC binding can revoke; from Kubernetes 1.29 kube-bundle uses a revocable group"
            } else {
                "cluster-admin through the ClusterRoleBinding of the same name in manifests/; \
                 deleting it revokes every admin kubeconfig; install.sh applies the manifests \
                 through the front-proxy client certificate"
            };
            let _ = writeln!(
                text,
                "  admin kubeconfig identity: {} in group {group} ({why})",
                admin.common_name
            );
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
