//! `auth = "client_certificate"`: the client assertion (RFC 7523) signed with the
//! certificate registered on the app, built over the bridge's own crypto (`ring`,
//! already built for rustls) instead of azure_identity's `client_certificate`
//! feature, which pulls in OpenSSL. The JWT is RS256 with the certificate's
//! SHA-256 thumbprint in `x5t#S256`, `aud` the tenant's token endpoint, `iss` and
//! `sub` the client id, and a ten-minute life; azure_identity's
//! `ClientAssertionCredential` sends it. The file is PEM: the certificate and an
//! unencrypted PKCS#8 or PKCS#1 RSA key (PKCS#12 is not read: no small pure-Rust
//! crate does it over `ring`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use azure_core::http::ClientMethodOptions;
use azure_identity::ClientAssertion;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// How long an assertion is valid: Entra accepts up to ten minutes.
const LIFETIME_SECS: i64 = 600;

/// A certificate and its key, read from a PEM file.
pub struct ClientCertificate {
    path: PathBuf,
    key: Arc<RsaKeyPair>,
    /// base64url(SHA-256(certificate DER)): `x5t#S256`.
    thumbprint_s256: String,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("path", &self.path)
            .field("x5t#S256", &self.thumbprint_s256)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl ClientCertificate {
    /// Reads the certificate and its RSA key. The error names the file and what is
    /// wrong, never key material.
    pub fn read(path: &Path) -> Result<ClientCertificate, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read certificate {}: {e}", path.display()))?;
        ClientCertificate::from_pem(&bytes, path)
    }

    /// Reads the certificate and its RSA key from PEM text (`path` names it in errors).
    pub fn from_pem(bytes: &[u8], path: &Path) -> Result<ClientCertificate, String> {
        let at = path.display();
        let cert = CertificateDer::pem_slice_iter(bytes)
            .next()
            .ok_or_else(|| format!("certificate {at} holds no PEM certificate"))?
            .map_err(|e| format!("certificate {at}: its certificate is not valid PEM ({e})"))?;
        let key = PrivateKeyDer::from_pem_slice(bytes).map_err(|_| {
            format!("certificate {at} holds no unencrypted private key (PKCS#8 or RSA)")
        })?;
        let key = match &key {
            PrivateKeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der()),
            _ => {
                return Err(format!(
                    "certificate {at}: the key is not an RSA key (Entra ID signs in with RSA certificates)"
                ));
            }
        }
        .map_err(|e| format!("certificate {at}: the private key is not a usable RSA key ({e})"))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
        Ok(ClientCertificate {
            path: path.to_path_buf(),
            key: Arc::new(key),
            thumbprint_s256: URL_SAFE_NO_PAD.encode(digest.as_ref()),
        })
    }

    /// The `x5t#S256` thumbprint (what the app registration lists, base64url).
    pub fn thumbprint_s256(&self) -> &str {
        &self.thumbprint_s256
    }

    /// A signed assertion for `client_id` at `audience` (the token endpoint URL),
    /// valid from `now` (Unix seconds).
    pub fn assertion(&self, client_id: &str, audience: &str, now: i64) -> Result<String, String> {
        let header = serde_json::json!({
            "alg": "RS256",
            "typ": "JWT",
            "x5t#S256": self.thumbprint_s256,
        });
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": format!("{:032x}", fastrand::u128(..)),
            "nbf": now,
            "iat": now,
            "exp": now + LIFETIME_SECS,
        });
        self.sign(&header, &claims)
    }

    /// A JWT of `header` and `claims`, signed RS256 with the key.
    pub fn sign(
        &self,
        header: &serde_json::Value,
        claims: &serde_json::Value,
    ) -> Result<String, String> {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| format!("cannot sign with the key of {}", self.path.display()))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

/// What `ClientAssertionCredential` asks for each token: a fresh assertion.
#[derive(Debug, Clone)]
pub struct CertificateAssertion {
    pub certificate: Arc<ClientCertificate>,
    pub client_id: String,
    /// `{authority_host}/{tenant}/oauth2/v2.0/token`.
    pub audience: String,
}

#[async_trait::async_trait]
impl ClientAssertion for CertificateAssertion {
    async fn secret(&self, _: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        self.certificate
            .assertion(
                &self.client_id,
                &self.audience,
                chrono::Utc::now().timestamp(),
            )
            .map_err(|e| {
                azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, e)
            })
    }
}

/// Test certificates: a registered app's, and another that is registered nowhere.
pub mod testdata {
    /// The certificate and key the simulator's app is registered with.
    pub const APP_PEM: &str = include_str!("testdata/app.pem");
    /// A certificate registered on no app.
    pub const OTHER_PEM: &str = include_str!("testdata/other.pem");

    /// The DER of the first certificate in a PEM text.
    pub fn certificate_der(pem: &str) -> Vec<u8> {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
            .expect("a PEM certificate")
            .to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(pem: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.pem");
        std::fs::write(&path, pem).unwrap();
        (dir, path)
    }

    #[test]
    fn an_assertion_is_an_rs256_jwt_with_the_thumbprint() {
        let (_dir, path) = write(testdata::APP_PEM);
        let cert = ClientCertificate::read(&path).unwrap();
        let jwt = cert
            .assertion("client-1", "https://login/t/oauth2/v2.0/token", 1_000)
            .unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        let der = testdata::certificate_der(testdata::APP_PEM);
        let expected = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &der));
        assert_eq!(header["x5t#S256"], expected);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://login/t/oauth2/v2.0/token");
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["exp"], 1_600);
        // The signature verifies with the certificate's public key.
        let der = CertificateDer::from(der);
        let end_entity = webpki::EndEntityCert::try_from(&der).unwrap();
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        end_entity
            .verify_signature(
                webpki::ring::RSA_PKCS1_2048_8192_SHA256,
                format!("{}.{}", parts[0], parts[1]).as_bytes(),
                &signature,
            )
            .unwrap();
        assert!(!format!("{cert:?}").contains("PRIVATE"));
    }

    #[test]
    fn a_file_without_a_key_or_certificate_is_named() {
        let cert_only = testdata::APP_PEM
            .split("-----BEGIN PRIVATE KEY-----")
            .next()
            .unwrap();
        let (_dir, path) = write(cert_only);
        let error = ClientCertificate::read(&path).unwrap_err();
        assert!(error.contains("no unencrypted private key"), "{error}");
        let (_dir, path) = write("nothing here");
        let error = ClientCertificate::read(&path).unwrap_err();
        assert!(error.contains("no PEM certificate"), "{error}");
    }
}
