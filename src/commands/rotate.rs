//! `encryption rotate`: one phase of the encryption-at-rest key rotation per call.
//!
//! The phases themselves are `encryption`'s; this command advances one and tells the
//! operator what to build, install and run before the next.

use std::io::Write;
use std::path::PathBuf;

use super::{load, open_built_store, report_warnings, secrets_folder, write_out};
use crate::cli::ConfigArgs;
use crate::encryption;
use crate::error::Error;

pub(super) fn rotate(
    config: &ConfigArgs,
    secrets: Option<PathBuf>,
    consent: encryption::RotationConsent,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    let validated = load(config)?;
    report_warnings(&validated, err)?;
    let cluster = &validated.cluster;
    let dir = secrets_folder(&config.config, cluster, secrets.as_deref())?;
    let store = open_built_store(&dir, err)?;
    let step = encryption::rotate(cluster, &store, consent)?;
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
            "the rotation is complete once every master runs it; rotating again starts a new \
             rotation, which asks for --start-new-rotation"
                .to_owned(),
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
