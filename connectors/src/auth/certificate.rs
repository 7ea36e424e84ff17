//! `auth = "client_certificate"`: the client assertion (RFC 7523) signed with the
//! certificate registered on the app, built over the bridge's own crypto (`ring`,
//! already built for rustls) instead of azure_identity's `client_certificate`
//! feature, which pulls in OpenSSL. The JWT is RS256 with the certificate's
//! SHA-256 thumbprint in `x5t#S256`, `aud` the tenant's token endpoint, `iss` and
//! `sub` the client id, and a ten-minute life; azure_identity's
//! `ClientAssertionCredential` sends it. The file is PEM (the certificate and a
//! PKCS#8 or PKCS#1 RSA key, or an encrypted PKCS#8 key with
//! `certificate_password`) or PKCS#12 (`.pfx`, `.p12`, opened with
//! `certificate_password`, or none). OpenSSL only opens an encrypted key or a
//! PKCS#12 file; the key is then used by `ring` like any other.

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
    pub fn read(path: &Path, password: Option<&str>) -> Result<ClientCertificate, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("cannot read certificate {}: {e}", path.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        if !text.contains("-----BEGIN") {
            return ClientCertificate::from_pkcs12(&bytes, path, password);
        }
        if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return ClientCertificate::from_encrypted_pem(&bytes, path, password);
        }
        ClientCertificate::from_pem(&bytes, path)
    }

    /// A PKCS#12 file: its certificate and key, opened with `password` (or the
    /// empty one).
    fn from_pkcs12(
        bytes: &[u8],
        path: &Path,
        password: Option<&str>,
    ) -> Result<ClientCertificate, String> {
        let at = path.display();
        let file = openssl::pkcs12::Pkcs12::from_der(bytes)
            .map_err(|_| format!("certificate {at} is neither PEM nor PKCS#12"))?;
        let opened = file
            .parse2(password.unwrap_or(""))
            .map_err(|_| match password {
                Some(_) => format!(
                    "certificate {at}: the PKCS#12 file does not open with certificate_password"
                ),
                None => format!(
                    "certificate {at}: the PKCS#12 file needs a password; give certificate_password"
                ),
            })?;
        let (Some(key), Some(cert)) = (opened.pkey, opened.cert) else {
            return Err(format!(
                "certificate {at}: the PKCS#12 file must hold the certificate and its private key"
            ));
        };
        let cert = cert
            .to_der()
            .map_err(|e| format!("certificate {at}: its certificate cannot be read ({e})"))?;
        let pkcs8 = key
            .private_key_to_pkcs8()
            .map_err(|e| format!("certificate {at}: its private key cannot be read ({e})"))?;
        ClientCertificate::from_der(&cert, &pkcs8, path)
    }

    /// PEM with an encrypted PKCS#8 key, opened with `password`.
    fn from_encrypted_pem(
        bytes: &[u8],
        path: &Path,
        password: Option<&str>,
    ) -> Result<ClientCertificate, String> {
        let at = path.display();
        let password = password.ok_or_else(|| {
            format!("certificate {at} holds an encrypted private key; give certificate_password")
        })?;
        let key = openssl::pkey::PKey::private_key_from_pem_passphrase(bytes, password.as_bytes())
            .map_err(|_| {
                format!("certificate {at}: its encrypted private key does not open with certificate_password")
            })?;
        let cert = CertificateDer::pem_slice_iter(bytes)
            .next()
            .ok_or_else(|| format!("certificate {at} holds no PEM certificate"))?
            .map_err(|e| format!("certificate {at}: its certificate is not valid PEM ({e})"))?;
        let pkcs8 = key
            .private_key_to_pkcs8()
            .map_err(|e| format!("certificate {at}: its private key cannot be read ({e})"))?;
        ClientCertificate::from_der(cert.as_ref(), &pkcs8, path)
    }

    /// The certificate (DER) and its RSA key (PKCS#8 DER).
    fn from_der(cert: &[u8], pkcs8: &[u8], path: &Path) -> Result<ClientCertificate, String> {
        let key = RsaKeyPair::from_pkcs8(pkcs8).map_err(|e| {
            format!(
                "certificate {}: the private key is not a usable RSA key ({e}); Entra ID signs in \
                 with RSA certificates",
                path.display()
            )
        })?;
        Ok(ClientCertificate::new(cert, key, path))
    }

    fn new(cert: &[u8], key: RsaKeyPair, path: &Path) -> ClientCertificate {
        let digest = ring::digest::digest(&ring::digest::SHA256, cert);
        ClientCertificate {
            path: path.to_path_buf(),
            key: Arc::new(key),
            thumbprint_s256: URL_SAFE_NO_PAD.encode(digest.as_ref()),
        }
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
        Ok(ClientCertificate::new(cert.as_ref(), key, path))
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
    /// `APP_PEM` exported as PKCS#12 (`openssl pkcs12 -export`), with [`PASSWORD`].
    pub const APP_P12: &[u8] = include_bytes!("testdata/app.p12");
    /// `APP_PEM` with its key encrypted (`openssl pkcs8 -topk8 -v2 aes-256-cbc`),
    /// with [`PASSWORD`].
    pub const APP_ENCRYPTED_PEM: &str = include_str!("testdata/app-encrypted.pem");
    /// The password of the two above.
    pub const PASSWORD: &str = "bridge-test-pass";

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
        let cert = ClientCertificate::read(&path, None).unwrap();
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

    fn thumbprint_of(file: &str, bytes: &[u8], password: Option<&str>) -> Result<String, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file);
        std::fs::write(&path, bytes).unwrap();
        ClientCertificate::read(&path, password).map(|c| c.thumbprint_s256().to_owned())
    }

    #[test]
    fn a_pkcs12_file_and_an_encrypted_key_open_with_their_password() {
        let pem = thumbprint_of("app.pem", testdata::APP_PEM.as_bytes(), None).unwrap();
        let pass = Some(testdata::PASSWORD);
        assert_eq!(
            thumbprint_of("app.p12", testdata::APP_P12, pass).unwrap(),
            pem
        );
        let encrypted = testdata::APP_ENCRYPTED_PEM.as_bytes();
        assert_eq!(thumbprint_of("app.pem", encrypted, pass).unwrap(), pem);

        // Without it, or with another one: named, with what to do, no key material.
        let error = thumbprint_of("app.p12", testdata::APP_P12, None).unwrap_err();
        assert!(
            error.contains("app.p12: the PKCS#12 file needs a password; give certificate_password"),
            "{error}"
        );
        let error = thumbprint_of("app.p12", testdata::APP_P12, Some("wrong")).unwrap_err();
        assert!(
            error.contains("does not open with certificate_password"),
            "{error}"
        );
        let error = thumbprint_of("app.pem", encrypted, None).unwrap_err();
        assert!(
            error.contains("holds an encrypted private key; give certificate_password"),
            "{error}"
        );
        let error = thumbprint_of("app.pem", encrypted, Some("wrong")).unwrap_err();
        assert!(
            error.contains("its encrypted private key does not open"),
            "{error}"
        );
        let error = thumbprint_of("app.pfx", b"\x30\x03\x02\x01\x03", pass).unwrap_err();
        assert!(error.contains("is neither PEM nor PKCS#12"), "{error}");
        assert!(!error.contains(testdata::PASSWORD));
    }

    #[test]
    fn a_file_without_a_key_or_certificate_is_named() {
        let cert_only = testdata::APP_PEM
            .split("-----BEGIN PRIVATE KEY-----")
            .next()
            .unwrap();
        let (_dir, path) = write(cert_only);
        let error = ClientCertificate::read(&path, None).unwrap_err();
        assert!(error.contains("no unencrypted private key"), "{error}");
        let key_only = testdata::APP_PEM
            .split("-----BEGIN PRIVATE KEY-----")
            .nth(1)
            .unwrap();
        let (_dir, path) = write(&format!("-----BEGIN PRIVATE KEY-----{key_only}"));
        let error = ClientCertificate::read(&path, None).unwrap_err();
        assert!(error.contains("no PEM certificate"), "{error}");
        let (_dir, path) = write("nothing here");
        let error = ClientCertificate::read(&path, None).unwrap_err();
        assert!(error.contains("is neither PEM nor PKCS#12"), "{error}");
    }
}
