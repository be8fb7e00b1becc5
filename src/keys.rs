//! Keys and PEM: the private keys kube-bundle signs with, and the PEM text they and
//! certificates are stored in.
//!
//! Shared by `pki` (CA and leaf keys, the service-account key) and `sign` (the bundle
//! signing key). ECDSA signatures use RFC 6979 and RSA uses PKCS#1 v1.5, both
//! deterministic, so the only randomness is in key generation: signing the same bytes
//! twice gives the same signature, and rebuilds stay byte-identical.
//!
//! Where the time goes, and so which library does what: an ECDSA key is 32 random bytes
//! from the OS (getrandom), not from aws-lc's generator, whose first use in a process (and
//! in each thread) pays a jitter-entropy start-up that costs far more than the keys a
//! build needs. Its public point is derived once, by aws-lc (assembly P-256), when the key
//! is made or read; p256 then signs from the bare scalar (RFC 6979) without deriving it
//! again. RSA keys stay wholly on aws-lc, the fastest RSA key generator available here.

use std::fmt;

use aws_lc_rs::encoding::{AsBigEndian, AsDer, EcPrivateKeyBin, Pkcs8V1Der};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use p256::NistP256;
use rcgen::{
    KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, PublicKeyData, RsaKeySize,
    SignatureAlgorithm, SigningKey,
};
use rustls_pki_types::PrivateKeyDer;
use sha2::{Digest, Sha256};

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
    /// The secret scalar, which is all RFC 6979 signing needs, and the public point
    /// (uncompressed SEC1), derived once when the key was made or read.
    EcdsaP256 {
        secret: p256::NonZeroScalar,
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
    /// Creates a fresh key: ECDSA from the OS random source directly, RSA through aws-lc.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self, Error> {
        let failed = |e: rcgen::Error| Error::Crypto(format!("key generation failed: {e}"));
        let rsa_size = match algorithm {
            KeyAlgorithm::EcdsaP256 => return generate_ecdsa_p256(),
            KeyAlgorithm::Rsa2048 => RsaKeySize::_2048,
            KeyAlgorithm::Rsa3072 => RsaKeySize::_3072,
            KeyAlgorithm::Rsa4096 => RsaKeySize::_4096,
        };
        let pair = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, rsa_size).map_err(failed)?;
        let block = pem::Pem::new(PEM_PRIVATE_KEY, pair.serialize_der());
        Ok(Self {
            kind: KeyKind::Rsa(pair),
            pem: block,
        })
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
            PEM_PRIVATE_KEY => match EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der)
            {
                Ok(pair) => parsed_ecdsa(&pair)?,
                Err(_) => rsa(PrivateKeyDer::Pkcs8(der.to_vec().into()))?,
            },
            PEM_EC_PRIVATE_KEY => {
                let pair = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, der)
                    .map_err(|_| "not a P-256 EC key (only P-256 ECDSA keys are supported)")?;
                parsed_ecdsa(&pair)?
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
        match &self.kind {
            KeyKind::EcdsaP256 { secret, .. } => Ok(ecdsa_sign_prehash(secret, digest)),
            KeyKind::Rsa(_) => Err(Error::Internal("prehash signing needs an ECDSA key".into())),
        }
    }

    /// Signs `message` with SHA-256; for ECDSA a deterministic DER signature (RFC 6979).
    pub fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        self.sign(message)
            .map_err(|e| Error::Crypto(format!("signing failed: {e}")))
    }
}

/// A new P-256 key from 32 bytes of the OS random source: uniform over [1, n) by
/// rejection (a draw is out of range with probability below 2^-32). aws-lc derives the
/// public point and writes the PKCS#8 v1 document (public point included), the same
/// encoding its own generator wrote; its random generator is never touched.
fn generate_ecdsa_p256() -> Result<PrivateKey, Error> {
    let failed = |what: &str| Error::Crypto(format!("key generation failed: {what}"));
    let mut bytes = [0u8; 32];
    let secret = loop {
        crate::secrets::random_bytes(&mut bytes)?;
        if let Ok(secret) = p256::NonZeroScalar::try_from(bytes.as_slice()) {
            break secret;
        }
    };
    // aws-lc's ECDH key type is its plain EC key: from a raw scalar it derives the point,
    // and its PKCS#8 is the id-ecPublicKey document an ECDSA key has.
    let pair = aws_lc_rs::agreement::PrivateKey::from_private_key(
        &aws_lc_rs::agreement::ECDH_P256,
        &bytes,
    )
    .map_err(|_| failed("aws-lc refused the scalar"))?;
    let public = pair
        .compute_public_key()
        .map_err(|_| failed("no public point"))?;
    let pkcs8: Pkcs8V1Der<'static> = pair.as_der().map_err(|_| failed("no PKCS#8"))?;
    Ok(PrivateKey {
        kind: KeyKind::EcdsaP256 {
            secret,
            public_point: public.as_ref().to_vec(),
        },
        pem: pem::Pem::new(PEM_PRIVATE_KEY, pkcs8.as_ref().to_vec()),
    })
}

/// A parsed P-256 key as we keep it. aws-lc checked, while parsing, that the public point
/// stored with the key belongs to its scalar (or derived it, when none was stored): the
/// one derivation a stored key costs.
fn parsed_ecdsa(pair: &EcdsaKeyPair) -> Result<KeyKind, String> {
    let damaged = || "a damaged P-256 key".to_owned();
    let scalar: EcPrivateKeyBin<'static> =
        pair.private_key().as_be_bytes().map_err(|_| damaged())?;
    let secret = p256::NonZeroScalar::try_from(scalar.as_ref()).map_err(|_| damaged())?;
    Ok(KeyKind::EcdsaP256 {
        secret,
        public_point: pair.public_key().as_ref().to_vec(),
    })
}

/// RFC 6979 signature of a SHA-256 digest, DER-encoded: what p256's `SigningKey` signs,
/// without building one (which would derive the public point again).
fn ecdsa_sign_prehash(secret: &p256::NonZeroScalar, digest: &[u8]) -> Vec<u8> {
    let (signature, _) =
        ecdsa::hazmat::sign_prehashed_rfc6979::<NistP256, Sha256>(secret, digest, &[]);
    p256::ecdsa::DerSignature::from(signature)
        .as_bytes()
        .to_vec()
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
            KeyKind::EcdsaP256 { secret, .. } => {
                Ok(ecdsa_sign_prehash(secret, &Sha256::digest(message)))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh_ecdsa() -> PrivateKey {
        PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap()
    }

    #[test]
    fn a_generated_ecdsa_key_reads_back_as_the_same_key() {
        let key = fresh_ecdsa();
        assert_eq!(key.algorithm_name(), "ecdsa-p256");
        let pem = key.to_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
        let again = PrivateKey::from_pem_text(&pem).unwrap();
        assert_eq!(
            again.subject_public_key_info(),
            key.subject_public_key_info()
        );
        assert_eq!(again.to_pem(), pem);
        assert_ne!(
            fresh_ecdsa().subject_public_key_info(),
            key.subject_public_key_info(),
            "two keys drew the same bytes"
        );
    }

    /// Signing from the bare scalar gives exactly what p256's own signing key gives (the
    /// signatures before this path existed), for messages and for digests.
    #[test]
    fn signatures_match_p256_signing_keys_byte_for_byte() {
        use p256::ecdsa::signature::Signer;
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        use p256::pkcs8::DecodePrivateKey;
        let key = fresh_ecdsa();
        let reference = p256::ecdsa::SigningKey::from_pkcs8_der(key.pem.contents()).unwrap();
        let public = reference.verifying_key().to_sec1_point(false);
        assert_eq!(key.der_bytes(), public.as_bytes());
        for message in [&b""[..], b"kube-bundle", &[7u8; 4096]] {
            let expected: p256::ecdsa::DerSignature = reference.sign(message);
            assert_eq!(key.sign_sha256(message).unwrap(), expected.as_bytes());
            let digest = Sha256::digest(message);
            let expected: p256::ecdsa::DerSignature = reference.sign_prehash(&digest).unwrap();
            assert_eq!(
                key.sign_sha256_prehash(&digest).unwrap(),
                expected.as_bytes()
            );
        }
    }

    /// The public point stored beside the scalar is checked against it while parsing:
    /// a key whose two halves disagree is refused, not trusted.
    #[test]
    fn a_stored_public_point_that_does_not_match_the_scalar_is_refused() {
        let key = fresh_ecdsa();
        let mut der = key.pem.contents().to_vec();
        // The PKCS#8 document ends with the uncompressed public point.
        let last = der.len() - 1;
        der[last] ^= 1;
        let damaged = pem::Pem::new(PEM_PRIVATE_KEY, der);
        assert!(PrivateKey::from_pem_block(&damaged).is_err());
    }

    /// SEC1 keys as openssl and cfssl write them (named curve, public point included).
    #[test]
    fn a_sec1_key_reads_as_the_same_key() {
        use p256::elliptic_curve::sec1::ToSec1Point as _;
        use p256::pkcs8::DecodePrivateKey;
        let key = fresh_ecdsa();
        let secret = p256::SecretKey::from_pkcs8_der(key.pem.contents()).unwrap();
        let sec1 = pem::Pem::new(PEM_EC_PRIVATE_KEY, secret.to_sec1_der().unwrap().to_vec());
        let again = PrivateKey::from_pem_text(&encode_pem(&sec1)).unwrap();
        assert_eq!(
            again.der_bytes(),
            secret.public_key().to_sec1_point(false).as_bytes()
        );
        assert_eq!(again.der_bytes(), key.der_bytes());
    }
}
