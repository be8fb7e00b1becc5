//! Keys and PEM: the private keys kube-bundle signs with, and the PEM text they and
//! certificates are stored in.
//!
//! Shared by `pki` (CA and leaf keys, the service-account key) and `sign` (the bundle
//! signing key). ECDSA signatures use RFC 6979 and RSA uses PKCS#1 v1.5, both
//! deterministic, so the only randomness is in key generation: signing the same bytes
//! twice gives the same signature, and rebuilds stay byte-identical.

use std::fmt;

use p256::pkcs8::DecodePrivateKey;
use rcgen::{
    KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, PublicKeyData, RsaKeySize,
    SignatureAlgorithm, SigningKey,
};
use rustls_pki_types::PrivateKeyDer;

use crate::config::KeyAlgorithm;
use crate::error::Error;

pub(crate) const PEM_CERTIFICATE: &str = "CERTIFICATE";
const PEM_PRIVATE_KEY: &str = "PRIVATE KEY";
const PEM_EC_PRIVATE_KEY: &str = "EC PRIVATE KEY";
const PEM_RSA_PRIVATE_KEY: &str = "RSA PRIVATE KEY";
const PEM_PUBLIC_KEY: &str = "PUBLIC KEY";

/// A private key kube-bundle can sign with: ECDSA P-256 (RFC 6979) or RSA.
pub struct PrivateKey {
    kind: KeyKind,
    /// The PEM block as stored: our own keys are PKCS#8; imported keys keep their encoding.
    pem: pem::Pem,
}

enum KeyKind {
    EcdsaP256 {
        key: p256::ecdsa::SigningKey,
        public_point: Vec<u8>,
    },
    Rsa(KeyPair),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material, even in debug output.
        write!(f, "PrivateKey({})", self.algorithm_name())
    }
}

impl PrivateKey {
    /// Creates a fresh key from the OS random source (through aws-lc).
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self, Error> {
        let failed = |e: rcgen::Error| Error::Crypto(format!("key generation failed: {e}"));
        let pair = match algorithm {
            KeyAlgorithm::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
            KeyAlgorithm::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
            KeyAlgorithm::Rsa3072 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_3072),
            KeyAlgorithm::Rsa4096 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_4096),
        }
        .map_err(failed)?;
        let block = pem::Pem::new(PEM_PRIVATE_KEY, pair.serialize_der());
        Self::from_pem_block(&block)
            .map_err(|why| Error::Internal(format!("a freshly generated key: {why}")))
    }

    /// Reads a PEM private key block: PKCS#8, SEC1 (EC) or PKCS#1 (RSA), unencrypted.
    pub(crate) fn from_pem_block(block: &pem::Pem) -> Result<Self, String> {
        let der = block.contents();
        let encrypted = block
            .headers()
            .get("Proc-Type")
            .is_some_and(|v| v.contains("ENCRYPTED"));
        if encrypted || block.tag() == "ENCRYPTED PRIVATE KEY" {
            return Err(
                "the key is password-protected; export it without a passphrase \
                        (openssl pkey -in KEY -out PLAIN)"
                    .into(),
            );
        }
        let kind = match block.tag() {
            PEM_PRIVATE_KEY => match p256::ecdsa::SigningKey::from_pkcs8_der(der) {
                Ok(key) => ecdsa(key),
                Err(_) => rsa(PrivateKeyDer::Pkcs8(der.to_vec().into()))?,
            },
            PEM_EC_PRIVATE_KEY => {
                let secret = p256::SecretKey::from_sec1_der(der)
                    .map_err(|_| "not a P-256 EC key (only P-256 ECDSA keys are supported)")?;
                ecdsa(secret.into())
            }
            PEM_RSA_PRIVATE_KEY => rsa(PrivateKeyDer::Pkcs1(der.to_vec().into()))?,
            other => return Err(format!("a '{other}' PEM block is not a private key")),
        };
        Ok(Self {
            kind,
            pem: block.clone(),
        })
    }

    /// Reads a file holding exactly one unencrypted private key block.
    pub fn from_pem_text(text: &str) -> Result<Self, String> {
        parse_key_file(text)
    }

    /// The key as PEM, in the encoding it was created or imported with.
    pub fn to_pem(&self) -> String {
        encode_pem(&self.pem)
    }

    /// The public half as a PKIX `PUBLIC KEY` PEM (sa.pub, signing.pub).
    pub fn public_key_pem(&self) -> String {
        encode_pem(&pem::Pem::new(
            PEM_PUBLIC_KEY,
            self.subject_public_key_info(),
        ))
    }

    /// RSA keys may also encipher (key transport); EC keys only sign.
    pub(crate) fn is_rsa(&self) -> bool {
        matches!(self.kind, KeyKind::Rsa(_))
    }

    pub fn algorithm_name(&self) -> &'static str {
        match &self.kind {
            KeyKind::EcdsaP256 { .. } => "ecdsa-p256",
            KeyKind::Rsa(pair) => match pair.public_key_raw().len() {
                // RSAPublicKey DER: modulus plus a little framing.
                0..=300 => "rsa-2048",
                301..=430 => "rsa-3072",
                _ => "rsa-4096",
            },
        }
    }

    /// Signs a SHA-256 digest computed elsewhere (a streamed file): ECDSA P-256 only,
    /// deterministic DER signature (RFC 6979).
    pub fn sign_sha256_prehash(&self, digest: &[u8]) -> Result<Vec<u8>, Error> {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        match &self.kind {
            KeyKind::EcdsaP256 { key, .. } => {
                let signature: p256::ecdsa::DerSignature = key
                    .sign_prehash(digest)
                    .map_err(|e| Error::Crypto(format!("signing failed: {e}")))?;
                Ok(signature.as_bytes().to_vec())
            }
            KeyKind::Rsa(_) => Err(Error::Internal("prehash signing needs an ECDSA key".into())),
        }
    }

    /// Signs `message` with SHA-256; for ECDSA a deterministic DER signature (RFC 6979).
    pub fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.sign(message)
            .map_err(|e| Error::Crypto(format!("signing failed: {e}")))
    }
}

fn ecdsa(key: p256::ecdsa::SigningKey) -> KeyKind {
    let public_point = key.verifying_key().to_sec1_point(false).as_bytes().to_vec();
    KeyKind::EcdsaP256 { key, public_point }
}

fn rsa(der: PrivateKeyDer<'_>) -> Result<KeyKind, String> {
    KeyPair::from_der_and_sign_algo(&der, &PKCS_RSA_SHA256)
        .map(KeyKind::Rsa)
        .map_err(|_| "not a P-256 ECDSA or RSA private key, or a damaged one".into())
}

impl PublicKeyData for PrivateKey {
    fn der_bytes(&self) -> &[u8] {
        match &self.kind {
            KeyKind::EcdsaP256 { public_point, .. } => public_point,
            KeyKind::Rsa(pair) => pair.der_bytes(),
        }
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match &self.kind {
            KeyKind::EcdsaP256 { .. } => &PKCS_ECDSA_P256_SHA256,
            KeyKind::Rsa(_) => &PKCS_RSA_SHA256,
        }
    }
}

impl SigningKey for PrivateKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match &self.kind {
            KeyKind::EcdsaP256 { key, .. } => {
                use p256::ecdsa::signature::Signer;
                let signature: p256::ecdsa::DerSignature = key.sign(message);
                Ok(signature.as_bytes().to_vec())
            }
            KeyKind::Rsa(pair) => pair.sign(message),
        }
    }
}

// ---------------------------------------------------------------------------------------
// PEM text

/// PEM with LF line endings, as every Unix tool writes it (the pem crate defaults to CRLF).
pub(crate) fn encode_pem(block: &pem::Pem) -> String {
    pem::encode_config(
        block,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// A certificate's DER as a CERTIFICATE block.
pub(crate) fn cert_pem(der: &[u8]) -> String {
    encode_pem(&pem::Pem::new(PEM_CERTIFICATE, der.to_vec()))
}

/// Parses every PEM block; a BEGIN without its END (a truncated file) is an error, where
/// the pem crate alone would skip the broken block silently.
pub(crate) fn parse_pem(text: &str) -> Result<Vec<pem::Pem>, String> {
    let begins = text.matches("-----BEGIN ").count();
    let ends = text.matches("-----END ").count();
    let blocks = pem::parse_many(text).map_err(|e| format!("not valid PEM ({e}); truncated?"))?;
    if begins != ends || blocks.len() != begins {
        return Err("not valid PEM: a block is cut off or damaged; is the file truncated?".into());
    }
    Ok(blocks)
}

/// A PEM file the user named (importCA, external etcd); its problems are bad input.
pub(crate) fn read_pem_file(path: &std::path::Path) -> Result<Vec<pem::Pem>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_pem(&text).map_err(|why| Error::Input(format!("{}: {why}", path.display())))
}

/// A file holding exactly one private key block and nothing else.
pub(crate) fn parse_key_file(text: &str) -> Result<PrivateKey, String> {
    let blocks = parse_pem(text)?;
    match blocks.as_slice() {
        [key] => PrivateKey::from_pem_block(key),
        _ => Err(format!(
            "expected one private key, found {} PEM blocks",
            blocks.len()
        )),
    }
}
