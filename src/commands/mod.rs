//! The commands: each one wires the stages it needs, from cluster.yaml to its output.
//!
//! Every command reads cluster.yaml through `config` → `validate`, then runs as many later
//! stages as it needs. Output goes to the writers it is given, never straight to stdout.
//! This module dispatches and holds what several commands share: loading, the default
//! folders, the secrets store, the writers.

mod build;
mod certs;
mod guards;
mod init;
mod inspect;
mod kubeconfig;
mod preview;
mod progress;
mod rotate;
mod shell;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cli::{Command, ConfigArgs, EncryptionCommand, KubeconfigCommand, Verbosity};
use crate::diagnostics;
use crate::error::Error;
use crate::model::Cluster;
use crate::output;
use crate::plan::{self, Plan};
use crate::secrets::{Access, SecretStore};
use crate::validate::{Severity, ValidateOptions, Validated};

pub use init::EXAMPLE_CLUSTER_YAML;

/// Runs one command. `out` receives the command's result, `err` its warnings.
pub fn run(
    command: Command,
    verbosity: Verbosity,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    match command {
        Command::Init { dir } => init::init(&dir, out),
        Command::Schema => write_out(out, &crate::schema::schema_json()),
        Command::Check(args) => preview::check(&args, out, err),
        Command::Plan {
            config,
            secrets,
            output,
        } => preview::plan(&config, secrets, output, out, err),
        Command::Build(args) => build::build(&args, verbosity, out, err),
        Command::Certs { command } => certs::certs(command, verbosity, out, err),
        Command::Encryption {
            command:
                EncryptionCommand::Rotate {
                    config,
                    secrets,
                    confirm_rewritten,
                    start_new_rotation,
                },
        } => {
            let consent = crate::encryption::RotationConsent {
                rewritten: confirm_rewritten,
                new_rotation: start_new_rotation,
            };
            rotate::rotate(&config, secrets, consent, out, err)
        }
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
                inspect::diff_pair(&old, &new, &pin, unverified, output, out, err)
            }
            _ => inspect::diff_generations(config, out_dir, unverified, output, out, err),
        },
        Command::Kubeconfig {
            command: KubeconfigCommand::User(args),
        } => kubeconfig::user(&args, out, err),
        Command::Verify {
            tarball,
            pin,
            allow_unpinned,
        } => inspect::verify(&tarball, &pin, allow_unpinned, out, err),
        Command::Completions { shell } => shell::completions(shell, out),
        Command::Man { dir } => shell::man(dir.as_deref(), out, err),
    }
}

/// config → validate, with the command line's options.
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

/// The validated cluster (warnings reported) and its plan. `only` names masters the
/// command is limited to (`--node`); an unknown one is a usage error, found before anything
/// is opened or created.
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

/// What the commands that only read secrets start with (`plan`, `certs expiry`): the
/// validated cluster (warnings reported), its plan and its secrets store, read only.
fn prepare(
    config: &ConfigArgs,
    secrets: Option<PathBuf>,
    err: &mut dyn Write,
) -> Result<(Validated, Plan, SecretStore), Error> {
    let (validated, plan) = load_and_plan(config, &[], err)?;
    let dir = secrets_folder(&config.config, &validated.cluster, secrets.as_deref())?;
    write_err(err, &format!("secrets: {}\n", dir.display()))?;
    let store = open_store(&dir, Access::ReadOnly, err)?;
    Ok((validated, plan, store))
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

/// The store of a command that changes what a build created (`certs renew`,
/// `encryption rotate`), locked for writing. The folder must exist already: run from the
/// wrong folder or before the first build, such a command fails without creating the
/// folder or its lock file (opening for writing would create both).
fn open_built_store(dir: &Path, err: &mut dyn Write) -> Result<SecretStore, Error> {
    write_err(err, &format!("secrets: {}\n", dir.display()))?;
    if !dir.is_dir() {
        return Err(Error::Input(format!(
            "{}: no such secrets folder; `kube-bundle build` creates it. Run this beside \
             the cluster.yaml that was built, or pass its secrets folder with --secrets",
            dir.display()
        )));
    }
    open_store(dir, Access::ReadWrite, err)
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

/// Pretty JSON with a final newline, fields in the order the type declares them.
fn to_json(value: &impl serde::Serialize) -> Result<String, Error> {
    serde_json::to_string_pretty(value)
        .map(|json| json + "\n")
        .map_err(|e| Error::Internal(format!("cannot encode the output as JSON: {e}")))
}

/// Pretty JSON with every object's keys in alphabetical order: the published key order
/// of `plan --output json` and `diff --output json`. The report types declare their fields
/// in reading order, and the plan's own types too; serde_json's `Value` keeps its keys
/// sorted (the crate is built without `preserve_order`), so the report goes through one.
fn to_sorted_json(value: &impl serde::Serialize) -> Result<String, Error> {
    let value = serde_json::to_value(value)
        .map_err(|e| Error::Internal(format!("cannot encode the output as JSON: {e}")))?;
    to_json(&value)
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<(), Error> {
    out.write_all(text.as_bytes())
        .map_err(|e| Error::io(Path::new("<stdout>"), e))
}

fn write_err(err: &mut dyn Write, text: &str) -> Result<(), Error> {
    err.write_all(text.as_bytes())
        .map_err(|e| Error::io(Path::new("<stderr>"), e))
}
