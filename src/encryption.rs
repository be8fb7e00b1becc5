//! Stage 4, continued: the encryption-at-rest keys and their offline rotation.
//!
//! In: the [`Cluster`] (the provider it wants) and the [`SecretStore`]. Out: the ordered
//! key list every master's encryption config carries. Keys are created once (32 random
//! bytes, as upstream's `head -c 32 /dev/urandom | base64`) and never deleted: a key a
//! finished rotation removes from the config moves to `retired`, so data written with it
//! can always be recovered.
//!
//! Rotation follows the upstream procedure as a sequence of
//! bundle generations, one phase per `kube-bundle encryption rotate`:
//! 1. the new key is added *second* on every master (all can decrypt with it);
//! 2. the new key moves *first* (all encrypt with it); the operator rewrites all secrets;
//! 3. the old key is removed (after the operator confirms the rewrite).
//!
//! A provider change (aescbc → secretbox) is the same sequence with the new key under the
//! new provider. Each phase must be built before the next may start. Once phase 3 is
//! built, the next call would start a new rotation: it asks for that to be said
//! explicitly, so a call meant to finish the rotation never begins another.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::config::EncryptionProvider;
use crate::error::Error;
use crate::model::Cluster;
use crate::pki::corrupt;
use crate::secrets::{SecretStore, random_bytes};

pub const ENCRYPTION_FILE: &str = "encryption.json";

/// The command operators run between phases 2 and 3 (upstream's rewrite step).
pub const REWRITE_COMMAND: &str =
    "kubectl get secrets --all-namespaces -o json | kubectl replace -f -";

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EncryptionKeys {
    /// In provider order: the first key encrypts new writes, every key decrypts.
    pub keys: Vec<EncryptionKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    /// Keys a finished rotation took out of the config; kept, never rendered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<EncryptionKey>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionKey {
    pub provider: EncryptionProvider,
    pub name: String,
    /// base64 of the raw key, as the apiserver's config wants it.
    pub secret: String,
}

/// The three phases of a rotation, stored in encryption.json as their numbers 1 to 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum RotationPhase {
    /// The new key is second: every master can decrypt with it, none encrypts with it.
    NewKeyAdded = 1,
    /// The new key is first: every master encrypts with it; old secrets await the rewrite.
    NewKeyFirst = 2,
    /// The old key is gone from the config (kept in secrets/ as retired).
    OldKeyRemoved = 3,
}

impl From<RotationPhase> for u8 {
    fn from(phase: RotationPhase) -> Self {
        phase as u8
    }
}

impl TryFrom<u8> for RotationPhase {
    type Error = String;

    fn try_from(number: u8) -> Result<Self, String> {
        match number {
            1 => Ok(Self::NewKeyAdded),
            2 => Ok(Self::NewKeyFirst),
            3 => Ok(Self::OldKeyRemoved),
            _ => Err(format!("rotation phase {number} is not 1, 2 or 3")),
        }
    }
}

impl fmt::Display for RotationPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", u8::from(*self))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rotation {
    pub phase: RotationPhase,
    pub old_key: String,
    pub new_key: String,
    /// Whether a full `build` has rendered this phase; the next phase waits for it.
    pub built: bool,
}

impl fmt::Debug for EncryptionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names and order only: key material never reaches logs.
        let names: Vec<String> = self
            .keys
            .iter()
            .map(|k| format!("{:?}:{}", k.provider, k.name))
            .collect();
        write!(f, "EncryptionKeys({names:?}, rotation {:?})", self.rotation)
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionKey({:?}:{})", self.provider, self.name)
    }
}

impl EncryptionKeys {
    /// The keys grouped into provider blocks, in order: consecutive keys of one provider
    /// share a block, as the apiserver's config lists them.
    pub fn provider_blocks(&self) -> Vec<(EncryptionProvider, Vec<&EncryptionKey>)> {
        let mut blocks: Vec<(EncryptionProvider, Vec<&EncryptionKey>)> = Vec::new();
        for key in &self.keys {
            match blocks.last_mut() {
                Some((provider, keys)) if *provider == key.provider => keys.push(key),
                _ => blocks.push((key.provider, vec![key])),
            }
        }
        blocks
    }

    fn check(&self) -> Result<(), String> {
        if self.keys.is_empty() {
            return Err("it lists no keys".into());
        }
        for key in self.keys.iter().chain(&self.retired) {
            let name_ok = !key.name.is_empty()
                && key.name.len() <= 63
                && key
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !name_ok {
                return Err(format!("key name {:?} is not a lowercase label", key.name));
            }
            let raw = BASE64
                .decode(&key.secret)
                .map_err(|_| format!("key {} is not base64", key.name))?;
            let sizes: &[usize] = match key.provider {
                EncryptionProvider::Aesgcm => &[16, 24, 32],
                EncryptionProvider::Aescbc | EncryptionProvider::Secretbox => &[32],
            };
            if !sizes.contains(&raw.len()) {
                return Err(format!(
                    "key {} is {} bytes; {:?} needs {sizes:?}",
                    key.name,
                    raw.len(),
                    key.provider
                ));
            }
        }
        Ok(())
    }

    fn save(&self, store: &SecretStore) -> Result<(), Error> {
        let mut json = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Input(format!("encoding the key set: {e}")))?;
        json.push('\n');
        store.write(ENCRYPTION_FILE, json.as_bytes())
    }

    fn next_name(&self) -> String {
        let used = |n: usize| {
            self.keys
                .iter()
                .chain(&self.retired)
                .any(|k| k.name == format!("key{n}"))
        };
        let n = (1..).find(|n| !used(*n)).unwrap_or(1);
        format!("key{n}")
    }
}

fn new_key(provider: EncryptionProvider, name: String) -> Result<EncryptionKey, Error> {
    let mut raw = [0u8; 32];
    random_bytes(&mut raw)?;
    Ok(EncryptionKey {
        provider,
        name,
        secret: BASE64.encode(raw),
    })
}

/// Reads the stored key set; `None` when there is none yet.
pub fn load(store: &SecretStore) -> Result<Option<EncryptionKeys>, Error> {
    let Some(text) = store.read_text(ENCRYPTION_FILE)? else {
        return Ok(None);
    };
    let keys: EncryptionKeys = serde_json::from_str(&text)
        .map_err(|e| corrupt(store, ENCRYPTION_FILE, &format!("not a key set ({e})")))?;
    keys.check()
        .map_err(|why| corrupt(store, ENCRYPTION_FILE, &why))?;
    Ok(Some(keys))
}

/// The key set a build renders, created on the first build. A provider change is not
/// applied silently: it needs the rotation, whose phases this refuses to skip.
pub fn keys_for_build(cluster: &Cluster, store: &SecretStore) -> Result<EncryptionKeys, Error> {
    let Some(keys) = load(store)? else {
        let keys = EncryptionKeys {
            keys: vec![new_key(cluster.encryption_provider, "key1".into())?],
            rotation: None,
            retired: Vec::new(),
        };
        keys.save(store)?;
        return Ok(keys);
    };
    let target = match &keys.rotation {
        Some(rotation) => keys
            .keys
            .iter()
            .find(|k| k.name == rotation.new_key)
            .map(|k| k.provider),
        None => keys.keys.first().map(|k| k.provider),
    };
    if target != Some(cluster.encryption_provider) {
        return Err(Error::Input(format!(
            "encryption.provider is {:?} but the stored keys use {:?}; the data in etcd must \
             be re-encrypted in stages: run `kube-bundle encryption rotate` to start",
            cluster.encryption_provider,
            target.unwrap_or(cluster.encryption_provider)
        )));
    }
    Ok(keys)
}

/// Records that a full build rendered the current rotation phase.
pub fn mark_built(store: &SecretStore, keys: &EncryptionKeys) -> Result<(), Error> {
    match &keys.rotation {
        Some(rotation) if !rotation.built => {
            let mut keys = keys.clone();
            if let Some(rotation) = keys.rotation.as_mut() {
                rotation.built = true;
            }
            keys.save(store)
        }
        _ => Ok(()),
    }
}

/// What one `encryption rotate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationStep {
    pub phase: RotationPhase,
    /// Key names in config order after the step, e.g. ["key1", "key2"].
    pub order: Vec<String>,
    pub old_key: String,
    pub new_key: String,
}

/// What the operator confirmed on the command line for `rotate`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RotationConsent {
    /// Every secret was rewritten with the new key (`--confirm-rewritten`): phase 3 may
    /// remove the old one.
    pub rewritten: bool,
    /// A new rotation may start after a finished one (`--start-new-rotation`).
    pub new_rotation: bool,
}

/// Advances the rotation one phase (see the module docs). Refuses out-of-order steps.
pub fn rotate(
    cluster: &Cluster,
    store: &SecretStore,
    consent: RotationConsent,
) -> Result<RotationStep, Error> {
    let mut keys = load(store)?.ok_or_else(|| {
        Error::Input("there are no encryption keys yet: run `kube-bundle build` first".into())
    })?;
    let unbuilt = |phase: RotationPhase| {
        Error::Input(format!(
            "phase {phase} of the rotation has not been built yet: run `kube-bundle build` \
             (all masters), install the bundles on every master, then rotate again"
        ))
    };
    let rotation = keys.rotation.clone();
    check_new_rotation_consent(rotation.as_ref(), consent.new_rotation)?;
    let step = match rotation {
        None
        | Some(Rotation {
            phase: RotationPhase::OldKeyRemoved,
            built: true,
            ..
        }) => {
            let old = keys
                .keys
                .first()
                .cloned()
                .ok_or_else(|| Error::Input("no current key".into()))?;
            let new = new_key(cluster.encryption_provider, keys.next_name())?;
            keys.keys = vec![old.clone(), new.clone()];
            Rotation {
                phase: RotationPhase::NewKeyAdded,
                old_key: old.name,
                new_key: new.name,
                built: false,
            }
        }
        Some(rotation) if !rotation.built => return Err(unbuilt(rotation.phase)),
        Some(rotation) if rotation.phase == RotationPhase::NewKeyAdded => {
            keys.keys.sort_by_key(|k| k.name != rotation.new_key);
            Rotation {
                phase: RotationPhase::NewKeyFirst,
                built: false,
                ..rotation
            }
        }
        // What is left: phase 2, built.
        Some(rotation) => {
            if !consent.rewritten {
                return Err(Error::Input(format!(
                    "removing key {} would make every secret still encrypted with it unreadable. \
                     Run `{REWRITE_COMMAND}` against the cluster first, then rotate again with \
                     --confirm-rewritten",
                    rotation.old_key
                )));
            }
            let (kept, removed): (Vec<_>, Vec<_>) = keys
                .keys
                .drain(..)
                .partition(|k| k.name == rotation.new_key);
            keys.keys = kept;
            keys.retired.extend(removed);
            Rotation {
                phase: RotationPhase::OldKeyRemoved,
                built: false,
                ..rotation
            }
        }
    };
    keys.rotation = Some(step.clone());
    keys.check().map_err(Error::Input)?;
    keys.save(store)?;
    Ok(RotationStep {
        phase: step.phase,
        order: keys.keys.iter().map(|k| k.name.clone()).collect(),
        old_key: step.old_key,
        new_key: step.new_key,
    })
}

/// A rotation after a finished one starts only with `--start-new-rotation`, and the flag
/// is refused while a rotation is under way (it would not start one there).
fn check_new_rotation_consent(rotation: Option<&Rotation>, consent: bool) -> Result<(), Error> {
    match rotation {
        None => Ok(()),
        Some(
            finished @ Rotation {
                phase: RotationPhase::OldKeyRemoved,
                built: true,
                ..
            },
        ) if !consent => Err(Error::Input(format!(
            "the rotation to key {} is complete (phase 3 of 3 is built): running `encryption \
             rotate` again starts a NEW rotation, adding a new key beside {} and taking three \
             more builds and installs. If that is what you want, run `kube-bundle encryption \
             rotate --start-new-rotation`",
            finished.new_key, finished.new_key
        ))),
        Some(Rotation {
            phase: RotationPhase::OldKeyRemoved,
            ..
        }) => Ok(()),
        Some(ongoing) if consent => Err(Error::Input(format!(
            "--start-new-rotation: the rotation to key {} is at phase {} of 3 and must finish \
             first; drop the flag to continue it",
            ongoing.new_key, ongoing.phase
        ))),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_phase_stays_a_number_and_an_unknown_one_is_refused() {
        let rotation = Rotation {
            phase: RotationPhase::NewKeyFirst,
            old_key: "key1".into(),
            new_key: "key2".into(),
            built: true,
        };
        let json = serde_json::to_string(&rotation).unwrap();
        assert!(json.contains("\"phase\":2"), "{json}");
        assert_eq!(serde_json::from_str::<Rotation>(&json).unwrap(), rotation);
        let unknown = json.replace("\"phase\":2", "\"phase\":4");
        let refused = serde_json::from_str::<Rotation>(&unknown).unwrap_err();
        assert!(refused.to_string().contains("not 1, 2 or 3"), "{refused}");
    }

    #[test]
    fn only_a_finished_rotation_asks_for_consent_to_start_another() {
        let rotation = |phase, built| Rotation {
            phase,
            old_key: "key1".into(),
            new_key: "key2".into(),
            built,
        };
        let finished = rotation(RotationPhase::OldKeyRemoved, true);
        let refused = check_new_rotation_consent(Some(&finished), false).unwrap_err();
        assert!(
            refused.to_string().contains("--start-new-rotation"),
            "{refused}"
        );
        assert!(check_new_rotation_consent(Some(&finished), true).is_ok());
        // The first rotation needs no consent, and accepts the flag.
        assert!(check_new_rotation_consent(None, false).is_ok());
        assert!(check_new_rotation_consent(None, true).is_ok());
        for phase in [RotationPhase::NewKeyAdded, RotationPhase::NewKeyFirst] {
            let ongoing = rotation(phase, true);
            assert!(check_new_rotation_consent(Some(&ongoing), false).is_ok());
            let refused = check_new_rotation_consent(Some(&ongoing), true).unwrap_err();
            assert!(
                refused.to_string().contains("must finish first"),
                "{refused}"
            );
        }
    }
}
