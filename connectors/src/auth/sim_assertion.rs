//! The token simulator's `client_assertion` flow (API.md §1), as Entra checks it:
//! `client_assertion_type` must be the JWT bearer type; an assertion with a
//! certificate thumbprint (`x5t#S256` or `x5t`) must name a certificate registered
//! on the app, be signed RS256 by its key, have `aud` = the token endpoint,
//! `iss` = `sub` = the client id, and be inside `nbf`..`exp`; an assertion without
//! one is a federated token (workload identity) and must match a federated
//! credential registered on the app (issuer, subject, audience
//! `api://AzureADTokenExchange`), signed by that issuer's key.

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls_pki_types::CertificateDer;
use serde_json::Value;

use super::sim::EntraError;

pub(super) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The audience of every federated token Entra exchanges.
pub const FEDERATED_AUDIENCE: &str = "api://AzureADTokenExchange";

/// A federated identity credential on an app: whose tokens it accepts.
#[derive(Debug, Clone)]
pub(super) struct Federated {
    pub issuer: String,
    pub subject: String,
    /// The issuer's signing certificate (DER): what its JWKS would publish.
    pub issuer_cert: Vec<u8>,
}

/// What the app registration holds for assertions.
pub(super) struct Registered<'a> {
    pub client_id: &'a str,
    pub certificates: &'a [Vec<u8>],
    pub federated: &'a [Federated],
    /// `{authority}/{tenant}/oauth2/v2.0/token`, as the request reached it.
    pub token_endpoint: &'a str,
    pub now: i64,
}

fn invalid_client(code: u32, description: impl Into<String>) -> EntraError {
    EntraError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        code,
        description,
    )
}

fn malformed() -> EntraError {
    EntraError::new(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        50027,
        "JWT token is invalid or malformed.",
    )
}

struct Jwt {
    header: Value,
    claims: Value,
    signing_input: String,
    signature: Vec<u8>,
}

fn decode(jwt: &str) -> Result<Jwt, EntraError> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err(malformed());
    };
    let json = |part: &str| -> Result<Value, EntraError> {
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| malformed())?;
        serde_json::from_slice(&bytes).map_err(|_| malformed())
    };
    Ok(Jwt {
        header: json(header)?,
        claims: json(claims)?,
        signing_input: format!("{header}.{claims}"),
        signature: URL_SAFE_NO_PAD.decode(signature).map_err(|_| malformed())?,
    })
}

fn signed_by(jwt: &Jwt, cert_der: &[u8]) -> bool {
    if jwt.header["alg"] != "RS256" {
        return false;
    }
    let der = CertificateDer::from(cert_der.to_vec());
    let Ok(cert) = webpki::EndEntityCert::try_from(&der) else {
        return false;
    };
    cert.verify_signature(
        webpki::ring::RSA_PKCS1_2048_8192_SHA256,
        jwt.signing_input.as_bytes(),
        &jwt.signature,
    )
    .is_ok()
}

fn thumbprints(der: &[u8]) -> (String, String) {
    let s256 = ring::digest::digest(&ring::digest::SHA256, der);
    let s1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    (URL_SAFE_NO_PAD.encode(s256), URL_SAFE_NO_PAD.encode(s1))
}

fn check_times(claims: &Value, now: i64) -> Result<(), EntraError> {
    let exp = claims["exp"].as_i64().ok_or_else(malformed)?;
    let nbf = claims["nbf"].as_i64().unwrap_or(i64::MIN);
    // Entra allows five minutes of clock skew.
    if now > exp + 300 || now + 300 < nbf {
        return Err(invalid_client(
            700024,
            "Client assertion is not within its valid time range.",
        ));
    }
    Ok(())
}

/// Checks the assertion of a token request; `Ok` means the client is authenticated.
pub(super) fn check(
    assertion_type: Option<&str>,
    assertion: &str,
    app: &Registered,
) -> Result<(), EntraError> {
    if assertion_type != Some(ASSERTION_TYPE) {
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            50035,
            format!("client_assertion_type must be '{ASSERTION_TYPE}'."),
        ));
    }
    let jwt = decode(assertion)?;
    let x5t_s256 = jwt.header["x5t#S256"].as_str();
    let x5t = jwt.header["x5t"].as_str();
    if x5t_s256.is_none() && x5t.is_none() {
        return check_federated(&jwt, app);
    }
    let cert = app.certificates.iter().find(|der| {
        let (s256, s1) = thumbprints(der);
        x5t_s256 == Some(s256.as_str()) || x5t == Some(s1.as_str())
    });
    let Some(cert) = cert else {
        return Err(invalid_client(
            700027,
            format!(
                "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.]",
                x5t_s256.or(x5t).unwrap_or(""),
                app.client_id
            ),
        ));
    };
    if !signed_by(&jwt, cert) {
        return Err(invalid_client(
            700027,
            "Client assertion failed signature validation.",
        ));
    }
    let aud = jwt.claims["aud"].as_str().unwrap_or("");
    if !aud.eq_ignore_ascii_case(app.token_endpoint) {
        return Err(invalid_client(
            700027,
            format!(
                "Client assertion audience claim does not match Realm issuer. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials (aud: '{aud}')."
            ),
        ));
    }
    for claim in ["iss", "sub"] {
        if !jwt.claims[claim]
            .as_str()
            .is_some_and(|v| v.eq_ignore_ascii_case(app.client_id))
        {
            return Err(invalid_client(
                700023,
                format!(
                    "Client assertion contains an invalid '{claim}' claim: it must be the client id."
                ),
            ));
        }
    }
    check_times(&jwt.claims, app.now)
}

fn check_federated(jwt: &Jwt, app: &Registered) -> Result<(), EntraError> {
    let iss = jwt.claims["iss"].as_str().unwrap_or("");
    let sub = jwt.claims["sub"].as_str().unwrap_or("");
    let audiences: Vec<&str> = match &jwt.claims["aud"] {
        Value::String(a) => vec![a.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !audiences.contains(&FEDERATED_AUDIENCE) {
        return Err(invalid_client(
            700212,
            format!(
                "No matching federated identity record found for presented assertion audience '{}'.",
                audiences.join(",")
            ),
        ));
    }
    if !app.federated.iter().any(|f| f.issuer == iss) {
        return Err(invalid_client(
            700211,
            format!(
                "No matching federated identity record found for presented assertion issuer '{iss}'."
            ),
        ));
    }
    let Some(federated) = app
        .federated
        .iter()
        .find(|f| f.issuer == iss && f.subject == sub)
    else {
        return Err(invalid_client(
            70021,
            format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{FEDERATED_AUDIENCE}'."
            ),
        ));
    };
    if !signed_by(jwt, &federated.issuer_cert) {
        return Err(invalid_client(
            700027,
            "Client assertion failed signature validation.",
        ));
    }
    check_times(&jwt.claims, app.now)
}

/// A PEM certificate's DER, for registering it.
pub fn pem_certificate_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .split("-----BEGIN CERTIFICATE-----")
        .nth(1)?
        .split("-----END CERTIFICATE-----")
        .next()?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD.decode(body).ok()
}
