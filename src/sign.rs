//! Stage 7: detached signatures over the exact `.tar.gz` bytes.
//!
//! In: tarball bytes and the bundle signing key. Out: DER ECDSA P-256 / SHA-256 signatures
//! (RFC 6979, so a rebuild signs identically), `signing.pub` and its fingerprint. A stock
//! node checks them with `openssl dgst -sha256 -verify signing.pub -signature X.sig X`
//! (OpenSSL 1.1.1 and 3.x).

use std::path::Path;

use p256::ecdsa::{DerSignature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use rcgen::PublicKeyData;
use sha2::{Digest, Sha256};

use crate::config::KeyAlgorithm;
use crate::error::Error;
use crate::keys::PrivateKey;
use crate::secrets::SecretStore;

pub const SIGNING_KEY_FILE: &str = "signing-key.pem";

/// The bundle signing key and the public half operators pin.
#[derive(Debug)]
pub struct Signer {
    key: PrivateKey,
}

impl Signer {
    /// The key from `--signing-key FILE`, else secrets/signing-key.pem, created on first use.
    pub fn load_or_create(store: &SecretStore, explicit: Option<&Path>) -> Result<Self, Error> {
        let key = match explicit {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
                PrivateKey::from_pem_text(&text).map_err(|why| Error::Input(format!("{}: {why}", path.display())))?
            }
            None => match store.read_text(SIGNING_KEY_FILE)? {
                Some(text) => PrivateKey::from_pem_text(&text).map_err(|why| {
                    Error::Input(format!(
                        "{}: {why}; kube-bundle never overwrites a signing key: restore it or move it away",
                        store.path(SIGNING_KEY_FILE).display()
                    ))
                })?,
                None => {
                    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256)?;
                    store.write(SIGNING_KEY_FILE, key.to_pem().as_bytes())?;
                    key
                }
            },
        };
        if key.algorithm_name() != "ecdsa-p256" {
            return Err(Error::Input(format!(
                "the bundle signing key must be ECDSA P-256 (it is {}); nodes verify with \
                 `openssl dgst -sha256 -verify`",
                key.algorithm_name()
            )));
        }
        Ok(Self { key })
    }

    /// A DER ECDSA signature over SHA-256 of `bytes`, deterministic (RFC 6979).
    pub fn sign(&self, bytes: &[u8]) -> Result<Vec<u8>, Error> {
        self.key.sign_sha256(bytes)
    }

    /// The same signature, from the SHA-256 of the bytes (a tarball is hashed while it
    /// is written, so it is never read back to be signed).
    pub fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, Error> {
        self.key.sign_sha256_prehash(digest)
    }

    pub fn public_key_pem(&self) -> String {
        self.key.public_key_pem()
    }

    /// An HMAC-SHA-256 tag over `record`, under a key derived from the signing key: for
    /// records kube-bundle keeps beside the bundles (the output marker's tarball records)
    /// that must not be forgeable by whoever can write there but holds no secrets.
    pub fn seal(&self, record: &str) -> String {
        hex::encode(aws_lc_rs::hmac::sign(&self.record_key(), record.as_bytes()))
    }

    /// Whether `tag` is [`Signer::seal`]'s tag over `record` (compared in constant time).
    pub fn check_seal(&self, record: &str, tag: &str) -> bool {
        hex::decode(tag).is_ok_and(|tag| {
            aws_lc_rs::hmac::verify(&self.record_key(), record.as_bytes(), &tag).is_ok()
        })
    }

    fn record_key(&self) -> aws_lc_rs::hmac::Key {
        // The signing key's own bytes never serve as an HMAC key directly: a label keeps
        // the derived key apart from any other use.
        let mut derivation = Sha256::new();
        derivation.update(b"kube-bundle output record key v1\0");
        derivation.update(self.key.to_pem().as_bytes());
        aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &derivation.finalize())
    }

    /// sha256 of the SubjectPublicKeyInfo DER, as
    /// `openssl pkey -pubin -in signing.pub -outform DER | sha256sum` prints it.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(self.key.subject_public_key_info()))
    }
}

/// The fingerprint of a `PUBLIC KEY` PEM, in the form [`Signer::fingerprint`] prints.
pub fn public_key_fingerprint(public_key_pem: &str) -> Result<String, String> {
    use p256::pkcs8::EncodePublicKey;
    let key = VerifyingKey::from_public_key_pem(public_key_pem.trim())
        .map_err(|_| "not an ECDSA P-256 PUBLIC KEY PEM".to_owned())?;
    let der = key
        .to_public_key_der()
        .map_err(|e| format!("cannot encode the public key: {e}"))?;
    Ok(hex::encode(Sha256::digest(der.as_bytes())))
}

/// A fingerprint as an operator may paste it: `sha256:` prefix, colons, upper case or
/// the `sha256sum` trailer (`  -`) are accepted; the result is bare lower-case hex.
pub fn normalize_fingerprint(text: &str) -> Result<String, String> {
    let text = text.trim();
    let text = text.strip_suffix('-').unwrap_or(text).trim();
    let text = text
        .strip_prefix("sha256:")
        .or_else(|| text.strip_prefix("SHA256:"))
        .unwrap_or(text);
    let hex: String = text
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err("a fingerprint is 64 hex digits, as `kube-bundle build` prints it".into())
    }
}

/// Checks a detached signature over a file, streaming it. Err says what is wrong.
pub fn verify_file_signature(
    public_key_pem: &str,
    path: &Path,
    signature: &[u8],
) -> Result<(), String> {
    let digest = file_digest(path).map_err(|e| e.to_string())?;
    verify_digest(public_key_pem, &digest, signature)
}

/// Checks a DER ECDSA P-256 signature over a SHA-256 digest against a `PUBLIC KEY` PEM.
/// The key and the signature are read as strictly as before (p256 parses both); the
/// arithmetic is aws-lc's, several times faster than pure Rust, which a rebuild pays once
/// per reused tarball.
pub fn verify_digest(public_key_pem: &str, digest: &[u8], signature: &[u8]) -> Result<(), String> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
    use p256::pkcs8::EncodePublicKey;
    let key = VerifyingKey::from_public_key_pem(public_key_pem.trim())
        .map_err(|_| "the public key is not an ECDSA P-256 PUBLIC KEY PEM".to_owned())?;
    DerSignature::try_from(signature)
        .map_err(|_| "the signature is not a DER ECDSA signature".to_owned())?;
    let key_der = key
        .to_public_key_der()
        .map_err(|e| format!("cannot encode the public key: {e}"))?;
    let digest = aws_lc_rs::digest::Digest::import_less_safe(digest, &aws_lc_rs::digest::SHA256)
        .map_err(|_| "the digest is not a SHA-256 digest".to_owned())?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key_der.as_bytes())
        .verify_digest(&digest, signature)
        .map_err(|_| {
            "the signature does not match the tarball (wrong key, or the file was altered)"
                .to_owned()
        })
}

/// SHA-256 of a file, streamed.
pub fn file_digest(path: &Path) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = file.read(&mut buffer).map_err(|e| Error::io(path, e))?;
        if read == 0 {
            return Ok(hasher.finalize().to_vec());
        }
        hasher.update(&buffer[..read]);
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_fingerprint_is_the_signers_and_pasted_forms_are_accepted() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let signer = Signer { key };
        let fingerprint = public_key_fingerprint(&signer.public_key_pem()).unwrap();
        assert_eq!(fingerprint, signer.fingerprint());
        let pasted = format!("SHA256:{}  -", fingerprint.to_uppercase());
        assert_eq!(normalize_fingerprint(&pasted).unwrap(), fingerprint);
        assert!(normalize_fingerprint("abc").is_err());
    }

    #[test]
    fn signatures_are_deterministic_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SecretStore::open(&dir.path().join("s"), crate::secrets::Access::ReadWrite).unwrap();
        let signer = Signer::load_or_create(&store, None).unwrap();
        let again = Signer::load_or_create(&store, None).unwrap();
        assert_eq!(
            signer.fingerprint(),
            again.fingerprint(),
            "the stored key is reused"
        );
        let first = signer.sign(b"bundle").unwrap();
        assert_eq!(
            first,
            signer.sign(b"bundle").unwrap(),
            "RFC 6979: same bytes, same signature"
        );
        let public = signer.public_key_pem();
        let digest = |m: &[u8]| Sha256::digest(m).to_vec();
        assert!(verify_digest(&public, &digest(b"bundle"), &first).is_ok());
        assert!(verify_digest(&public, &digest(b"bundlf"), &first).is_err());
        assert_eq!(signer.fingerprint().len(), 64);
    }
}
