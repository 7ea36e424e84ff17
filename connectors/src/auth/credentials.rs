//! azure_identity's credential for each `auth` choice, all sending through the
//! bridge's client options (its reqwest client, retries and error capture).

use std::ffi::OsStr;
use std::sync::Arc;

use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::ClientOptions;
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertionCredential,
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    Executor, ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use bridge_core::config::{AzureIdentity, SourceAuth, UserAssigned};
use bridge_core::ports::{ConnectorError, ConnectorResult, ErrorKind};
use secrecy::{ExposeSecret, SecretString};

use super::SYSTEM;
use super::certificate::{CertificateAssertion, ClientCertificate};

/// The credential for `identity`; `secret` is the client secret for
/// `client_secret`, the certificate's password for `client_certificate`.
pub(super) fn build(
    identity: &AzureIdentity,
    secret: Option<&SecretString>,
    client_options: ClientOptions,
) -> ConnectorResult<Arc<dyn TokenCredential>> {
    let config_error = |message: String| ConnectorError::new(ErrorKind::Permanent, SYSTEM, message);
    let sdk_error = |e: azure_core::Error| {
        config_error(format!(
            "cannot set up the Entra ID credential ({}): {e}",
            identity.auth.name()
        ))
    };
    let tenant_id = identity.tenant_id.as_str();
    if tenant_id.is_empty()
        || !tenant_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        return Err(config_error(format!(
            "tenant_id {tenant_id:?} is not a tenant id or domain: copy the directory (tenant) id from the app registration"
        )));
    }
    let needs_client = matches!(
        identity.auth,
        SourceAuth::ClientSecret { .. }
            | SourceAuth::ClientCertificate { .. }
            | SourceAuth::WorkloadIdentity { .. }
    );
    if needs_client && identity.client_id.is_empty() {
        return Err(config_error("client_id is empty".into()));
    }
    Ok(match &identity.auth {
        SourceAuth::ClientSecret { .. } => {
            let secret = secret
                .filter(|s| !s.expose_secret().is_empty())
                .ok_or_else(|| config_error("client_secret is empty".into()))?;
            ClientSecretCredential::new(
                tenant_id,
                identity.client_id.clone(),
                Secret::new(secret.expose_secret().to_string()),
                Some(ClientSecretCredentialOptions { client_options }),
            )
            .map_err(sdk_error)?
        }
        SourceAuth::ClientCertificate { certificate, .. } => {
            let password = secret.map(|s| s.expose_secret().to_owned());
            certificate_credential(identity, certificate, password.as_deref(), client_options)?
        }
        SourceAuth::ManagedIdentity { user_assigned } => {
            let user_assigned_id = user_assigned.as_ref().map(|u| match u {
                UserAssigned::ClientId(id) => UserAssignedId::ClientId(id.clone()),
                UserAssigned::ResourceId(id) => UserAssignedId::ResourceId(id.clone()),
            });
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id,
                client_options,
            }))
            .map_err(sdk_error)?
        }
        SourceAuth::WorkloadIdentity { token_file } => {
            WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                credential_options: ClientAssertionCredentialOptions { client_options },
                client_id: Some(identity.client_id.clone()),
                tenant_id: Some(tenant_id.to_string()),
                token_file_path: Some(token_file.clone()),
            }))
            .map_err(sdk_error)?
        }
        SourceAuth::AzureCli => AzureCliCredential::new(Some(AzureCliCredentialOptions {
            tenant_id: Some(tenant_id.to_string()),
            executor: Some(Arc::new(TokioExecutor)),
            ..Default::default()
        }))
        .map_err(sdk_error)?,
    })
}

/// `ClientAssertionCredential` with the bridge's own certificate assertion.
fn certificate_credential(
    identity: &AzureIdentity,
    certificate: &std::path::Path,
    password: Option<&str>,
    client_options: ClientOptions,
) -> ConnectorResult<Arc<dyn TokenCredential>> {
    let tenant_id = identity.tenant_id.as_str();
    let certificate = ClientCertificate::read(certificate, password)
        .map_err(|e| ConnectorError::new(ErrorKind::Permanent, SYSTEM, e))?;
    let assertion = CertificateAssertion {
        certificate: Arc::new(certificate),
        client_id: identity.client_id.clone(),
        audience: format!(
            "{}/{tenant_id}/oauth2/v2.0/token",
            identity.authority_host.trim_end_matches('/')
        ),
    };
    let credential: Arc<dyn TokenCredential> = ClientAssertionCredential::new(
        tenant_id.to_string(),
        identity.client_id.clone(),
        assertion,
        Some(ClientAssertionCredentialOptions { client_options }),
    )
    .map_err(|e| {
        ConnectorError::new(
            ErrorKind::Permanent,
            SYSTEM,
            format!("cannot set up the Entra ID credential (client_certificate): {e}"),
        )
    })?;
    Ok(credential)
}

/// Runs `az` on tokio's process support, so waiting for it never blocks a worker
/// (azure_identity's default runs it with `std::process`).
#[derive(Debug)]
struct TokioExecutor;

#[async_trait::async_trait]
impl Executor for TokioExecutor {
    async fn run(&self, program: &OsStr, args: &[&OsStr]) -> std::io::Result<std::process::Output> {
        tokio::process::Command::new(program)
            .args(args)
            .kill_on_drop(true)
            .output()
            .await
    }
}
