//! `build`: every stage, from cluster.yaml to signed tarballs in the output folder.
//!
//! The order is what keeps a failed or concurrent build harmless: the output folder is
//! claimed and its cluster identity checked before anything is written, bundles are
//! written into a staging folder beside it, and only a complete staging folder replaces
//! the output (the generation before is kept). Secrets of removed nodes are retired after
//! that swap, so a failed build never takes credentials from bundles that stay. Before
//! anything is written, the build is also compared with the bundles in the output (see
//! `guards`), which tells the summary which certificates were renewed since.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use rayon::prelude::*;
use time::OffsetDateTime;

use super::guards::{self, PreviousGeneration};
use super::progress::{Progress, Stage};
use super::{
    absolute, bundled_nodes, config_folder, load_and_plan, open_store, secrets_folder, write_err,
    write_out,
};
use crate::bundle::{self, format};
use crate::cli::{BuildArgs, Verbosity};
use crate::encryption::{self, EncryptionKeys};
use crate::error::Error;
use crate::model::Cluster;
use crate::output::{self, OutputDir, Protected, Staging};
use crate::pki::{self, Decision, Pki};
use crate::plan::{self, NodePlan, Plan};
use crate::render;
use crate::secrets::{Access, SecretStore};
use crate::sign::Signer;

pub(super) fn build(
    args: &BuildArgs,
    verbosity: Verbosity,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Error> {
    if args.replace_cluster_identity && !args.nodes.is_empty() {
        return Err(Error::Usage(
            "--replace-cluster-identity rebuilds every node: drop --node, so no bundle of \
             the old identity stays beside the new ones"
                .into(),
        ));
    }
    let (validated, plan) = load_and_plan(&args.config, &args.nodes, err)?;
    let cluster = &validated.cluster;
    let secrets_dir = secrets_folder(&args.config.config, cluster, args.secrets.as_deref())?;
    let output = claim_output(args, cluster, &secrets_dir)?;
    write_err(
        err,
        &format!(
            "secrets: {}\noutput:  {}\n",
            secrets_dir.display(),
            output.path().display()
        ),
    )?;
    let progress = Progress::new(verbosity);
    let overrides = guards::Overrides {
        allow_version_skew: args.allow_version_skew,
        allow_issuer_change: args.allow_issuer_change,
    };
    let previous = PreviousGeneration::read(output.path(), cluster.name.as_str(), overrides, err)?;
    progress.detail(&previous.describe());
    for warning in guards::check(&previous, cluster, &plan, overrides)? {
        write_err(err, &warning)?;
    }
    let (staging, mut store, identity) = stage_and_lock(args, cluster, &output, &secrets_dir, err)?;
    // New secrets are made durable all at once, while the bundles are written; a build
    // that fails before that stores none of them.
    store.defer_durability();
    let pki = provision(cluster, &plan, &store, &progress)?;
    let ca_fingerprint = pki.ca_fingerprint()?;
    announce_identity(&identity, &ca_fingerprint, &store, err)?;
    let encryption = encryption::keys_for_build(cluster, &store)?;
    let signer = Signer::load_or_create(&store, args.signing_key.as_deref())?;
    let source_date_epoch = source_date_epoch()?;

    let selected: Vec<&NodePlan> = plan
        .nodes
        .values()
        .filter(|n| args.nodes.is_empty() || args.nodes.contains(&n.name))
        .collect();
    let previous_tarballs = output::read_marker(output.path())?
        .map(|marker| marker.tarballs)
        .unwrap_or_default();
    let kept = keep_other_nodes(output.path(), staging.path(), &plan, &selected, &signer)?;
    let inputs = BundleInputs {
        cluster,
        pki: &pki,
        encryption: &encryption,
        signer: &signer,
        config_sha256: &validated.source_sha256,
        source_date_epoch,
        staging: staging.path(),
        current: output.path(),
        previous_tarballs: &previous_tarballs,
    };
    let (written, durable) = std::thread::scope(|scope| {
        let durable = scope.spawn(|| store.make_durable());
        let written = write_bundles(&inputs, &selected, &progress);
        let durable = durable
            .join()
            .unwrap_or_else(|_| Err(Error::Internal("making secrets durable panicked".into())));
        (written, durable)
    });
    // The secrets first: bundles must never ship a key the store could lose.
    durable?;
    let written = written?;
    let tarballs = built_tarballs(&written, &kept, &previous_tarballs, &signer);
    let (mut summary, digests) =
        node_summaries(&output, &staging, &plan, &pki, &previous, &written)?;
    finish_output(staging.path(), cluster, &signer, &digests)?;
    output.commit(
        staging,
        &output::Marker::new(
            cluster.name.as_str(),
            &ca_fingerprint,
            store.dir(),
            &signer.fingerprint(),
            tarballs,
        ),
    )?;
    if args.nodes.is_empty() {
        // Only a build of every master completes a rotation phase.
        encryption::mark_built(&store, &encryption)?;
        store.make_durable()?;
    }
    // After the swap, so a failed build never takes credentials from bundles that stay.
    summary.push_str(&retire_removed_nodes(&store, &plan)?);
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

/// The output folder (`--out`, else bundles/<cluster> beside cluster.yaml), refused when it
/// is, or would hold, something the operator keeps.
fn claim_output(
    args: &BuildArgs,
    cluster: &Cluster,
    secrets_dir: &Path,
) -> Result<OutputDir, Error> {
    let config_path = absolute(&args.config.config)?;
    let out_path = match &args.out {
        Some(dir) => dir.clone(),
        None => config_folder(&args.config.config)?
            .join("bundles")
            .join(cluster.name.as_str()),
    };
    let working = absolute(Path::new("."))?;
    OutputDir::claim(
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
                path: secrets_dir,
                output_may_nest: false,
            },
        ],
    )
}

/// Checks the output's cluster identity, then stages and takes the secrets lock; returns
/// the identity as seen under the lock.
fn stage_and_lock(
    args: &BuildArgs,
    cluster: &Cluster,
    output: &OutputDir,
    secrets_dir: &Path,
    err: &mut dyn Write,
) -> Result<(Staging, SecretStore, pki::Identity), Error> {
    let replace = args.replace_cluster_identity;
    // Decided before anything is written: a build must not mint a CA into a folder
    // whose bundles belong to another one.
    let identity =
        pki::cluster_identity(cluster, &SecretStore::open(secrets_dir, Access::ReadOnly)?)?;
    check_output_identity(output, cluster, &identity, secrets_dir, replace)?;
    let staging = output.stage()?;

    let store = open_store(secrets_dir, Access::ReadWrite, err)?;
    // Another build may have created the CA between the first look and the lock.
    let locked_identity = pki::cluster_identity(cluster, &store)?;
    if locked_identity != identity {
        check_output_identity(output, cluster, &locked_identity, secrets_dir, replace)?;
    }
    Ok((staging, store, locked_identity))
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

/// A new or imported CA is said loudly: bundles from a new one are trusted by no cluster.
fn announce_identity(
    identity: &pki::Identity,
    ca_fingerprint: &str,
    store: &SecretStore,
    err: &mut dyn Write,
) -> Result<(), Error> {
    match identity {
        pki::Identity::New => write_err(
            err,
            &format!(
                "creating a NEW cluster identity in {}: CA fingerprint {ca_fingerprint}; \
                 bundles built from it are trusted by no existing cluster\n",
                store.dir().display()
            ),
        ),
        pki::Identity::Imported(_) => write_err(
            err,
            &format!(
                "imported the cluster CA into {}: CA fingerprint {ca_fingerprint}\n",
                store.dir().display()
            ),
        ),
        pki::Identity::Stored(_) => Ok(()),
    }
}

/// pki's provisioning, shown as a stage when it makes keys: RSA keys take up to a second
/// each, and a first build of many nodes makes dozens.
fn provision(
    cluster: &Cluster,
    plan: &Plan,
    store: &SecretStore,
    progress: &Progress,
) -> Result<Pki, Error> {
    let now = OffsetDateTime::now_utc();
    // Counting the keys surveys secrets/ once more, which only someone watching needs.
    let stage = if progress.enabled() {
        let keys = pki::keys_to_make(cluster, plan, store, now)?;
        let algorithm = cluster.pki.key_algorithm;
        let noun = if keys == 1 { "key" } else { "keys" };
        (keys > 0).then(|| progress.stage(format!("generating {keys} {algorithm} {noun}"), keys))
    } else {
        None
    };
    let key_made = || {
        if let Some(stage) = &stage {
            stage.step("key");
        }
    };
    let pki = pki::provision_reporting(cluster, plan, store, now, &key_made)?;
    if let Some(stage) = stage {
        stage.finish();
    }
    Ok(pki)
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

/// With --node, the other masters' bundles in the output stay; a node no longer in
/// cluster.yaml is never carried over. Only regular files are carried (a link could
/// point into secrets/), and only when the current key signed them: one output never
/// mixes two signing keys. Returns the nodes carried over.
fn keep_other_nodes(
    current: &Path,
    staging: &Path,
    plan: &Plan,
    selected: &[&NodePlan],
    signer: &Signer,
) -> Result<Vec<String>, Error> {
    let mut kept = Vec::new();
    for node in bundled_nodes(current)? {
        if !plan.nodes.contains_key(&node) || selected.iter().any(|n| n.name == node) {
            continue;
        }
        let signed = signed_tarball(current, &node, signer).map_err(|why| {
            Error::Input(format!(
                "--node: {node}'s bundle in the output {why}; build every node (without \
                 --node) so the output holds one key's signatures"
            ))
        })?;
        carry_over(current, staging, &signed)?;
        kept.push(node);
    }
    Ok(kept)
}

/// A node's tarball and signature in the output, checked: both regular files, and the
/// signature made by the current key over the tarball's bytes.
struct SignedTarball {
    file_names: [String; 2],
    sha256: String,
    signature_sha256: String,
}

/// Checks `<node>.tar.gz` and its signature in `dir`; the error says why they cannot be
/// carried into the next generation.
fn signed_tarball(dir: &Path, node: &str, signer: &Signer) -> Result<SignedTarball, String> {
    let file_names = [format!("{node}.tar.gz"), format!("{node}.tar.gz.sig")];
    for name in &file_names {
        let path = dir.join(name);
        let metadata = std::fs::symlink_metadata(&path).map_err(|e| format!("({e})"))?;
        if !metadata.is_file() {
            return Err(format!(
                "has {name} that is not a regular file (kube-bundle wrote none such; remove it)"
            ));
        }
    }
    let tarball = dir.join(&file_names[0]);
    let signature = dir.join(&file_names[1]);
    let digest = crate::sign::file_digest(&tarball).map_err(|e| format!("({e})"))?;
    let signature_bytes = std::fs::read(&signature).map_err(|e| format!("({e})"))?;
    crate::sign::verify_digest(&signer.public_key_pem(), &digest, &signature_bytes)
        .map_err(|why| format!("does not verify with this build's signing key ({why})"))?;
    Ok(SignedTarball {
        file_names,
        sha256: hex::encode(digest),
        signature_sha256: crate::sign::sha256_hex(&signature_bytes),
    })
}

/// Puts a checked tarball and its signature into the staging folder unchanged: as hard
/// links, which need no copy and no fsync (their bytes are already on disk), else as
/// synced copies. Nothing ever writes to a generation's files in place, so the two
/// generations sharing them is safe.
fn carry_over(current: &Path, staging: &Path, signed: &SignedTarball) -> Result<(), Error> {
    for name in &signed.file_names {
        let from = current.join(name);
        let to = staging.join(name);
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).map_err(|e| Error::io(&from, e))?;
            std::fs::File::open(&to)
                .and_then(|file| file.sync_all())
                .map_err(|e| Error::io(&to, e))?;
        }
    }
    Ok(())
}

/// The marker's record of every tarball in the new generation: the ones this build wrote
/// or reused, and, with --node, the others' records as they were.
fn built_tarballs(
    written: &[WrittenBundle<'_>],
    kept: &[String],
    previous: &BTreeMap<String, output::BuiltTarball>,
    signer: &Signer,
) -> BTreeMap<String, output::BuiltTarball> {
    let mut tarballs: BTreeMap<String, output::BuiltTarball> = kept
        .iter()
        .filter_map(|node| Some((node.clone(), previous.get(node)?.clone())))
        .collect();
    for bundle in written {
        let node = &bundle.node.name;
        let sealed = output::BuiltTarball::sealed_text(
            node,
            &bundle.inputs_sha256,
            &bundle.sha256,
            &bundle.signature_sha256,
        );
        tarballs.insert(
            node.clone(),
            output::BuiltTarball {
                inputs_sha256: bundle.inputs_sha256.clone(),
                tarball_sha256: bundle.sha256.clone(),
                signature_sha256: bundle.signature_sha256.clone(),
                seal: signer.seal(&sealed),
            },
        );
    }
    tarballs
}

/// What every node's bundle is made from.
struct BundleInputs<'a> {
    cluster: &'a Cluster,
    pki: &'a Pki,
    encryption: &'a EncryptionKeys,
    signer: &'a Signer,
    /// Of the exact cluster.yaml bytes this build validated; bundle.json records it.
    config_sha256: &'a str,
    source_date_epoch: Option<u64>,
    staging: &'a Path,
    /// The output's current generation, and what its marker says each tarball was made
    /// from: a node whose inputs did not change has its tarball reused.
    current: &'a Path,
    previous_tarballs: &'a BTreeMap<String, output::BuiltTarball>,
}

/// One node's bundle, written and signed in the staging folder.
struct WrittenBundle<'a> {
    node: &'a NodePlan,
    /// `<node>.tar.gz`
    file_name: String,
    sha256: String,
    bundle_id: String,
    signature_sha256: String,
    /// `bundle::inputs_digest` of the node's tree.
    inputs_sha256: String,
    /// Carried over from the current generation unchanged, not written again.
    reused: bool,
}

/// Renders, packs, compresses and signs each selected node into the staging folder.
fn write_bundles<'a>(
    inputs: &BundleInputs<'_>,
    selected: &[&'a NodePlan],
    progress: &Progress,
) -> Result<Vec<WrittenBundle<'a>>, Error> {
    let stage = bundles_stage(inputs.cluster, selected.len(), progress);
    let scratch = inputs.staging.join(".shared");
    let reuse_possible = selected
        .iter()
        .any(|node| inputs.previous_tarballs.contains_key(&node.name));
    let shared = if reuse_possible {
        bundle::SharedFiles::new(scratch)
    } else {
        bundle::SharedFiles::compressing_when_hashed(scratch)
    };
    let syncer = TarballSyncer::new();
    // Nodes are independent: render, compress and sign them in parallel, while the
    // syncer waits for the disk.
    let written = selected
        .par_iter()
        .map(|node| {
            let (written, unsynced) = write_bundle(inputs, node, &shared)?;
            if let Some(tarball) = unsynced {
                syncer.sync(tarball)?;
            }
            stage.step(&format!("{}: written and signed", node.name));
            Ok(written)
        })
        .collect::<Result<Vec<_>, Error>>();
    // Waited for even after a failure: no sync may outlive the staging folder.
    let synced = syncer.finish();
    let written = written?;
    synced?;
    shared.close()?;
    stage.finish();
    Ok(written)
}

/// Waits for written tarballs to reach the disk on threads of its own, so that the
/// threads writing them go on compressing the next node.
struct TarballSyncer {
    to_sync: mpsc::SyncSender<bundle::UnsyncedTarball>,
    syncing: Arc<Mutex<mpsc::Receiver<bundle::UnsyncedTarball>>>,
    /// Started with the first tarballs that need them: a rebuild that reuses every
    /// tarball starts none.
    workers: Mutex<Vec<JoinHandle<Result<(), Error>>>>,
}

/// fsync waits, it does not compute: more workers than cores is right, and a few let
/// the file system commit several tarballs at once.
const SYNC_WORKERS: usize = 4;
/// Tarballs written but not yet synced, at most: past this the writers wait, which keeps
/// open files and unwritten data bounded however many nodes the cluster has.
const SYNCS_QUEUED: usize = 4 * SYNC_WORKERS;

impl TarballSyncer {
    fn new() -> Self {
        let (to_sync, syncing) = mpsc::sync_channel(SYNCS_QUEUED);
        Self {
            to_sync,
            syncing: Arc::new(Mutex::new(syncing)),
            workers: Mutex::new(Vec::new()),
        }
    }

    fn sync(&self, tarball: bundle::UnsyncedTarball) -> Result<(), Error> {
        let mut workers = self
            .workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if workers.len() < SYNC_WORKERS {
            let syncing = Arc::clone(&self.syncing);
            workers.push(std::thread::spawn(move || sync_tarballs(&syncing)));
        }
        drop(workers);
        // Workers stop only once `finish` closes the channel.
        self.to_sync
            .send(tarball)
            .map_err(|_| Error::Internal("every tarball sync worker stopped".into()))
    }

    /// Waits until every tarball handed over is on disk; the first failure, if any.
    fn finish(self) -> Result<(), Error> {
        drop(self.to_sync);
        let workers = self
            .workers
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Every worker is joined before any failure is returned.
        let outcomes: Vec<Result<(), Error>> = workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|_| Err(Error::Internal("a tarball sync panicked".into())))
            })
            .collect();
        outcomes.into_iter().collect()
    }
}

/// Syncs tarballs from `syncing` until the channel closes; the first failure is
/// returned once the channel is drained, so the writers never block on a dead worker.
fn sync_tarballs(syncing: &Mutex<mpsc::Receiver<bundle::UnsyncedTarball>>) -> Result<(), Error> {
    let mut outcome = Ok(());
    loop {
        // The lock is held only while waiting for the next tarball.
        let next = syncing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .recv();
        let Ok(tarball) = next else {
            return outcome;
        };
        if outcome.is_ok() {
            outcome = tarball.sync();
        }
    }
}

/// "compressing kube-apiserver (120 MB) and writing 3 bundles": the binaries are what
/// makes this stage slow, compressed once and shared by every bundle.
fn bundles_stage(cluster: &Cluster, bundles: usize, progress: &Progress) -> Stage {
    let binaries: Vec<String> = [&cluster.kube_apiserver_binary, &cluster.front_binary]
        .into_iter()
        .flatten()
        .map(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            match std::fs::metadata(path) {
                Ok(metadata) => format!("{name} ({} MB)", metadata.len() / 1_000_000),
                Err(_) => name.into_owned(),
            }
        })
        .collect();
    let noun = if bundles == 1 { "bundle" } else { "bundles" };
    let what = if binaries.is_empty() {
        format!("writing {bundles} {noun}")
    } else {
        format!(
            "compressing {} and writing {bundles} {noun}",
            binaries.join(", ")
        )
    };
    progress.stage(what, bundles)
}

/// The node's bundle, and its tarball when it was written anew and still has to be synced.
fn write_bundle<'a>(
    inputs: &BundleInputs<'_>,
    node: &'a NodePlan,
    shared: &bundle::SharedFiles,
) -> Result<(WrittenBundle<'a>, Option<bundle::UnsyncedTarball>), Error> {
    let cluster = inputs.cluster;
    let rendered = render::render_node(cluster, node, inputs.pki, inputs.encryption)?;
    let contents = bundle::contents(&node.name, rendered, shared)?;
    let documents = render::documents(&render::BundleFacts {
        cluster,
        node,
        bundle_id: &contents.bundle_id,
        manifests: contents.manifests.clone(),
    })?;
    let assembled = bundle::assemble(
        cluster,
        node,
        contents,
        documents,
        inputs.config_sha256,
        shared,
    )?;
    let file_name = format!("{}.tar.gz", node.name);
    let tarball = inputs.staging.join(&file_name);
    let epoch = inputs
        .source_date_epoch
        .unwrap_or_else(|| inputs.pki.issued_at(&node.name));
    let inputs_sha256 = bundle::inputs_digest(&node.name, &assembled.tree, epoch, shared)?;
    if let Some(reused) = reusable_tarball(inputs, &node.name, &inputs_sha256) {
        carry_over(inputs.current, inputs.staging, &reused)?;
        let written = WrittenBundle {
            node,
            file_name,
            sha256: reused.sha256,
            signature_sha256: reused.signature_sha256,
            bundle_id: assembled.bundle_id,
            inputs_sha256,
            reused: true,
        };
        return Ok((written, None));
    }
    let unsynced =
        bundle::write_tarball_unsynced(&tarball, &node.name, &assembled.tree, epoch, shared)?;
    let signature = inputs.signer.sign_digest(&unsynced.digest)?;
    write_private(&inputs.staging.join(format!("{file_name}.sig")), &signature)?;
    let written = WrittenBundle {
        node,
        file_name,
        sha256: hex::encode(unsynced.digest),
        signature_sha256: crate::sign::sha256_hex(&signature),
        bundle_id: assembled.bundle_id,
        inputs_sha256,
        reused: false,
    };
    Ok((written, Some(unsynced)))
}

/// The node's tarball in the current generation, when the marker's record of it is sealed
/// by this build's signing key, names exactly these inputs, and the tarball and signature
/// still hash to what it recorded. Anything else (no record, other inputs, a damaged,
/// replaced or linked file, a forged record, another key) means writing it again, which
/// is always safe.
fn reusable_tarball(
    inputs: &BundleInputs<'_>,
    node: &str,
    inputs_sha256: &str,
) -> Option<SignedTarball> {
    let record = inputs.previous_tarballs.get(node)?;
    let sealed = output::BuiltTarball::sealed_text(
        node,
        &record.inputs_sha256,
        &record.tarball_sha256,
        &record.signature_sha256,
    );
    if record.inputs_sha256 != inputs_sha256 || !inputs.signer.check_seal(&sealed, &record.seal) {
        return None;
    }
    let file_names = [format!("{node}.tar.gz"), format!("{node}.tar.gz.sig")];
    for (name, recorded) in file_names
        .iter()
        .zip([&record.tarball_sha256, &record.signature_sha256])
    {
        let path = inputs.current.join(name);
        let regular = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
        if !regular || bundle::file_sha256(&path).ok()? != *recorded {
            return None;
        }
    }
    Some(SignedTarball {
        file_names,
        sha256: record.tarball_sha256.clone(),
        signature_sha256: record.signature_sha256.clone(),
    })
}

/// Writes a 0600 file and waits until it is on disk: the output folder is renamed into
/// place only when everything in it is durable.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    output::write_to_disk(crate::secrets::create_private_file(path)?, path, bytes)
}

/// One line per built node (against the current generation, with what happened to its
/// certificates) and per node that left the output; and the tarballs' digests by file name.
fn node_summaries(
    output: &OutputDir,
    staging: &Staging,
    plan: &Plan,
    pki: &Pki,
    previous: &PreviousGeneration,
    written: &[WrittenBundle<'_>],
) -> Result<(String, BTreeMap<String, String>), Error> {
    let mut digests = BTreeMap::new();
    let mut summary = String::new();
    for bundle in written {
        let node = bundle.node;
        let generation = if bundle.reused {
            "unchanged".to_owned()
        } else {
            generation_change(
                output.path(),
                staging.path(),
                &bundle.file_name,
                &bundle.sha256,
            )?
        };
        digests.insert(bundle.file_name.clone(), bundle.sha256.clone());
        summary.push_str(&format!(
            "{}: {generation}; bundle {} ({})\n",
            node.name,
            bundle.bundle_id,
            certificate_changes(node, pki, previous)
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
    Ok((summary, digests))
}

/// What this build did to a node's certificates, for its summary line: "certificates
/// reused" when every one was, else each one that was not (new, renewed, re-issued and
/// why), then "the others reused". A user-supplied certificate (external etcd) is shipped
/// as given, neither issued nor reused, so it is not listed.
fn certificate_changes(node: &NodePlan, pki: &Pki, previous: &PreviousGeneration) -> String {
    if node.role == plan::Role::Client {
        return "client: the HA front only".to_owned();
    }
    let decisions = pki.decisions.get(&node.name).into_iter().flatten();
    let mut fates: Vec<(&str, CertificateFate)> = decisions
        .filter(|(_, decision)| **decision != Decision::External)
        .map(|(cert, decision)| {
            // A certificate that travels only inside a kubeconfig (the controller manager's
            // and the scheduler's identities) has no file of its own to compare: its
            // kubeconfig shows up among the changed files instead.
            let own_file = node
                .files
                .values()
                .any(|file| file.artifact == plan::Artifact::Cert(*cert));
            let shipped = pki
                .nodes
                .get(&node.name)
                .and_then(|leaves| leaves.get(cert))
                .filter(|_| own_file)
                .and_then(|leaf| previous.shipped(&node.name, leaf.cert_pem.as_bytes()));
            (cert.as_str(), CertificateFate::of(decision, shipped))
        })
        .collect();
    let Some((_, first)) = fates.first() else {
        return "no certificates".to_owned();
    };
    if !matches!(first, CertificateFate::Reissued(_)) && fates.iter().all(|(_, f)| f == first) {
        return format!("certificates {first}");
    }
    let reused = fates
        .iter()
        .filter(|(_, f)| *f == CertificateFate::Reused)
        .count();
    fates.retain(|(_, fate)| *fate != CertificateFate::Reused);
    let mut parts: Vec<String> = fates
        .iter()
        .map(|(cert, fate)| format!("{cert} {fate}"))
        .collect();
    if reused > 0 {
        parts.push("the others reused".to_owned());
    }
    parts.join("; ")
}

/// What happened to one certificate, as the build summary says it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CertificateFate {
    New,
    /// Stored and shipped as before.
    Reused,
    /// Stored, still right, but not what the node's bundle in the output holds: replaced
    /// since the last build into this output (`certs renew`).
    Renewed,
    Reissued(String),
}

impl CertificateFate {
    /// `shipped`: whether the node's bundle in the output holds this exact certificate
    /// (`None` without such a bundle).
    fn of(decision: &Decision, shipped: Option<bool>) -> Self {
        match (decision, shipped) {
            (Decision::New, _) => Self::New,
            (Decision::Reissue(reason), _) => Self::Reissued(reason.clone()),
            (Decision::Reuse | Decision::External, Some(false)) => Self::Renewed,
            (Decision::Reuse | Decision::External, _) => Self::Reused,
        }
    }
}

impl std::fmt::Display for CertificateFate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::New => f.write_str("new"),
            Self::Reused => f.write_str("reused"),
            Self::Renewed => f.write_str("renewed"),
            Self::Reissued(reason) => write!(f, "re-issued ({reason})"),
        }
    }
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

/// signing.pub, INSTALL.md and SHA256SUMS over every tarball and signature.
/// `digests` holds the tarballs hashed while they were written.
fn finish_output(
    dir: &Path,
    cluster: &Cluster,
    signer: &Signer,
    digests: &BTreeMap<String, String>,
) -> Result<(), Error> {
    let write = |name: &str, bytes: &[u8]| output::write_durably(&dir.join(name), bytes);
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
    let text = format::checksums_file(sums.iter().map(|(n, h)| (n.as_str(), h.as_str())));
    write(format::CHECKSUM_FILE, text.as_bytes())
}

/// After the swap: a node no longer in cluster.yaml has its credentials moved to retired/
/// (never deleted), one summary line each.
fn retire_removed_nodes(store: &SecretStore, plan: &Plan) -> Result<String, Error> {
    let today = OffsetDateTime::now_utc().date().to_string();
    let mut summary = String::new();
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
    Ok(summary)
}
