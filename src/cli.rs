//! The command line (design.md §2): clap types, and the wiring of stages per command.
//!
//! Each command reads cluster.yaml through `config` → `validate`, then runs as many later
//! stages as it needs. Output goes to the writers it is given, never straight to stdout.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

use time::OffsetDateTime;

use crate::diagnostics;
use crate::error::Error;
use crate::pki;
use crate::plan::{self, Plan};
use crate::secrets::{Access, SecretStore};
use crate::validate::{Cluster, Severity, ValidateOptions, Validated};

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
            let validated = load(&config)?;
            report_warnings(&validated, err)?;
            let cluster = &validated.cluster;
            let plan = plan::plan(cluster);
            let secrets_dir = secrets.unwrap_or_else(|| default_secrets_dir(cluster));
            let store = SecretStore::open(&secrets_dir, Access::ReadOnly)?;
            let decisions = pki::assess(cluster, &plan, &store, OffsetDateTime::now_utc())?;
            let text = match output {
                OutputFormat::Json => plan_json(&plan, &decisions)?,
                OutputFormat::Text => plan_text(&plan, &decisions),
            };
            write_out(out, &text)
        }
    }
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
        let _ = writeln!(text, "\nnode {} ({})", node.name, node.ip);
        let ips: Vec<String> = node
            .serving_cert_sans
            .ips
            .iter()
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(text, "  serving cert SANs:");
        let _ = writeln!(text, "    DNS: {}", node.serving_cert_sans.dns.join(", "));
        let _ = writeln!(text, "    IP:  {}", ips.join(", "));
        let _ = writeln!(text, "  directories: {}", node.directories.join(", "));
        let _ = writeln!(text, "  files:");
        for (path, file) in &node.files {
            let artifact = serde_json::to_value(file.artifact)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let _ = writeln!(text, "    {:04o}  {path}  ({artifact})", file.mode);
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
