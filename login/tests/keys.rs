//! The token key files are ones other tools read: OpenSSL loads the private
//! key `warren keygen` writes and derives the same public key; a private key
//! in the form earlier versions wrote still signs.

#![allow(clippy::unwrap_used)]

use std::{process::Command, time::Duration};

use ed25519_dalek::{
    SigningKey,
    pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding},
};
use warren_connector::TokenVerifier;
use warren_login::{JwtSettings, TokenSigner, keys::write_pair};
use warren_proto::Uid;
use warren_test_support::TempDir;

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed (scripts/test.sh installs it)")
}

#[test]
fn openssl_reads_the_private_key_and_derives_the_same_public_key() {
    let dir = TempDir::new("warren-keys");
    let (private, public) = write_pair(dir.path()).unwrap();
    let private = private.to_str().unwrap();
    let read = openssl(&["pkey", "-in", private, "-noout"]);
    assert!(
        read.status.success(),
        "openssl pkey refused the private key: {}",
        String::from_utf8_lossy(&read.stderr)
    );
    let derived = openssl(&["pkey", "-in", private, "-pubout"]);
    assert!(derived.status.success());
    assert_eq!(
        String::from_utf8(derived.stdout).unwrap(),
        std::fs::read_to_string(public).unwrap(),
        "OpenSSL derives the public key warren wrote"
    );
}

#[test]
fn a_private_key_in_the_earlier_form_still_signs() {
    let jwt = JwtSettings::default();
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    // What `warren keygen` wrote before: PKCS#8 v2, the public key inside.
    let old = key.to_pkcs8_pem(LineEnding::LF).unwrap();
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let signer = TokenSigner::from_pem(old.as_bytes(), &jwt).unwrap();
    let (token, _) = signer.sign(Uid(7)).unwrap();
    let verifier = TokenVerifier::from_ed_pem(
        public.as_bytes(),
        &jwt.issuer,
        &jwt.audience,
        Duration::ZERO,
    )
    .unwrap();
    assert_eq!(verifier.verify(&token).unwrap(), Uid(7));
}
