//! [`SecretCell`]: one secret shared by the clients that sign in with it, read per
//! request. A secret from an environment variable or a file is fixed; one from Key
//! Vault is fetched again once it is older than `[azure] key_vault_refresh`, and at
//! once when the system it signs in to answers 401 (the secret was rotated), so a
//! rotation needs no restart. A refetch that fails keeps the value it has.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bridge_core::config::{KeyVaultRef, publish_key_vault_value};
use secrecy::{ExposeSecret, SecretString};

/// A 401 refetches at most this often: a system that refuses the new value too
/// does not make the bridge hammer the vault.
const MIN_REFETCH: Duration = Duration::from_secs(5);

/// Where a cell's value is fetched again from.
#[async_trait]
pub trait SecretFetch: Send + Sync {
    async fn fetch(&self, reference: &KeyVaultRef) -> Result<SecretString, String>;
}

struct Source {
    fetch: Arc<dyn SecretFetch>,
    reference: KeyVaultRef,
    refresh: Duration,
}

struct State {
    value: SecretString,
    fetched: Instant,
}

/// A secret the clients read per request.
pub struct SecretCell {
    state: Mutex<State>,
    source: Option<Source>,
    /// One refetch at a time.
    gate: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SecretCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let from = self.source.as_ref().map(|s| s.reference.url());
        f.debug_struct("SecretCell")
            .field("key_vault", &from)
            .field("value", &"[redacted]")
            .finish()
    }
}

impl SecretCell {
    /// A secret that does not change while the bridge runs.
    pub fn fixed(value: SecretString) -> Arc<SecretCell> {
        Arc::new(SecretCell {
            state: Mutex::new(State {
                value,
                fetched: Instant::now(),
            }),
            source: None,
            gate: tokio::sync::Mutex::new(()),
        })
    }

    /// A Key Vault secret, fetched once already (`value`).
    pub fn key_vault(
        value: SecretString,
        reference: KeyVaultRef,
        fetch: Arc<dyn SecretFetch>,
        refresh: Duration,
    ) -> Arc<SecretCell> {
        publish_key_vault_value(&reference, &value);
        Arc::new(SecretCell {
            state: Mutex::new(State {
                value,
                fetched: Instant::now(),
            }),
            source: Some(Source {
                fetch,
                reference,
                refresh,
            }),
            gate: tokio::sync::Mutex::new(()),
        })
    }

    /// The value as it is now, without fetching.
    pub fn current(&self) -> SecretString {
        let state = self.state.lock().expect("secret cell");
        SecretString::from(state.value.expose_secret().to_string())
    }

    /// The value, fetched again first when it is older than the refresh interval.
    pub async fn get(&self) -> SecretString {
        if let Some(source) = &self.source {
            let age = self.state.lock().expect("secret cell").fetched.elapsed();
            if age >= source.refresh {
                self.refetch_after(source.refresh).await;
            }
        }
        self.current()
    }

    /// After a 401: fetch the value again (unless it was fetched a moment ago).
    /// True when the value changed, so the request is worth another try.
    pub async fn refetch(&self) -> bool {
        if self.source.is_none() {
            return false;
        }
        self.refetch_after(MIN_REFETCH).await
    }

    /// Makes the value look fetched `age` ago (tests).
    #[cfg(test)]
    pub(crate) fn age_by(&self, age: Duration) {
        let mut state = self.state.lock().expect("secret cell");
        state.fetched = Instant::now() - age;
    }

    /// Whether this secret comes from Key Vault.
    pub fn is_key_vault(&self) -> bool {
        self.source.is_some()
    }

    async fn refetch_after(&self, min_age: Duration) -> bool {
        let Some(source) = &self.source else {
            return false;
        };
        let _one_at_a_time = self.gate.lock().await;
        if self.state.lock().expect("secret cell").fetched.elapsed() < min_age {
            return false;
        }
        match source.fetch.fetch(&source.reference).await {
            Ok(value) => {
                publish_key_vault_value(&source.reference, &value);
                let mut state = self.state.lock().expect("secret cell");
                let changed = state.value.expose_secret() != value.expose_secret();
                state.value = value;
                state.fetched = Instant::now();
                if changed {
                    tracing::info!(secret = %source.reference, "Key Vault secret changed: using its new version");
                }
                changed
            }
            Err(problem) => {
                // Try again at the next read after MIN_REFETCH, not at every request.
                let mut state = self.state.lock().expect("secret cell");
                state.fetched = Instant::now() - source.refresh.saturating_sub(MIN_REFETCH);
                tracing::warn!(secret = %source.reference, error = %problem, "cannot fetch the Key Vault secret again; keeping the value it had");
                false
            }
        }
    }
}

/// A bearer token that is itself the secret (a generic system's API token): read
/// per request, fetched again on a 401.
#[derive(Debug)]
pub struct CellToken(pub Arc<SecretCell>);

#[async_trait]
impl crate::http::TokenProvider for CellToken {
    async fn token(&self) -> bridge_core::ports::ConnectorResult<SecretString> {
        Ok(self.0.get().await)
    }

    async fn invalidate(&self) {
        self.0.refetch().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Counting {
        calls: AtomicUsize,
        value: Mutex<String>,
    }

    #[async_trait]
    impl SecretFetch for Counting {
        async fn fetch(&self, _: &KeyVaultRef) -> Result<SecretString, String> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(SecretString::from(self.value.lock().unwrap().clone()))
        }
    }

    fn reference() -> KeyVaultRef {
        KeyVaultRef::parse("https://kvcell.vault.azure.net/secrets/token").unwrap()
    }

    #[tokio::test]
    async fn a_fixed_secret_never_refetches() {
        let cell = SecretCell::fixed(SecretString::from("a".to_string()));
        assert!(!cell.refetch().await);
        assert_eq!(cell.get().await.expose_secret(), "a");
    }

    #[tokio::test]
    async fn a_401_refetches_once_and_reports_a_change() {
        let source = Arc::new(Counting::default());
        *source.value.lock().unwrap() = "v2".into();
        let cell = SecretCell::key_vault(
            SecretString::from("v1".to_string()),
            reference(),
            source.clone(),
            Duration::from_secs(3600),
        );
        assert_eq!(cell.get().await.expose_secret(), "v1", "fresh: no fetch");
        assert_eq!(source.calls.load(Ordering::SeqCst), 0);
        // Fetched a moment ago: a 401 now does not go to the vault.
        assert!(!cell.refetch().await);
        assert_eq!(source.calls.load(Ordering::SeqCst), 0);
        cell.state.lock().unwrap().fetched = Instant::now() - Duration::from_secs(6);
        assert!(cell.refetch().await);
        assert_eq!(cell.current().expose_secret(), "v2");
        assert!(!format!("{cell:?}").contains("v2"));
        let published = bridge_core::config::SecretRef::KeyVault(reference())
            .resolve()
            .unwrap();
        assert_eq!(published.expose_secret(), "v2");
    }

    #[tokio::test]
    async fn an_old_value_is_refetched_on_read() {
        let source = Arc::new(Counting::default());
        *source.value.lock().unwrap() = "new".into();
        let cell = SecretCell::key_vault(
            SecretString::from("old".to_string()),
            reference(),
            source.clone(),
            Duration::from_secs(60),
        );
        cell.state.lock().unwrap().fetched = Instant::now() - Duration::from_secs(61);
        assert_eq!(cell.get().await.expose_secret(), "new");
        assert_eq!(cell.get().await.expose_secret(), "new");
        assert_eq!(source.calls.load(Ordering::SeqCst), 1);
    }
}
