//! The simulators' shared record of the bearer tokens the token simulator issued:
//! which audience each is for and when it expires. The Graph and Sentinel simulators
//! check every `Authorization` header against it, so a token for the wrong API, an
//! expired token or a made-up one is refused as the real services would refuse it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    Missing,
    Unknown,
    Expired,
    WrongAudience,
}

impl TokenProblem {
    /// The message the real services put in their 401 body.
    pub fn message(self) -> &'static str {
        match self {
            TokenProblem::Missing => "Access token is empty.",
            TokenProblem::Unknown => "Invalid access token.",
            TokenProblem::Expired => "Lifetime validation failed, the token is expired.",
            TokenProblem::WrongAudience => "Invalid audience.",
        }
    }
}

#[derive(Debug)]
struct Issued {
    audience: String,
    /// Who the token was issued to (an app's client id, a managed identity's), for
    /// the simulators that check a role (Key Vault's RBAC); empty when unknown.
    principal: String,
    expires: Instant,
}

/// Tokens issued by the token simulator.
#[derive(Debug)]
pub struct TokenRegistry {
    tokens: Mutex<HashMap<String, Issued>>,
    lifetime: Mutex<Duration>,
}

impl TokenRegistry {
    pub fn new() -> Arc<TokenRegistry> {
        Arc::new(TokenRegistry {
            tokens: Mutex::new(HashMap::new()),
            lifetime: Mutex::new(Duration::from_secs(3599)),
        })
    }

    /// Issues a token for `audience` (e.g. `https://graph.microsoft.com`); returns it
    /// and its lifetime in seconds.
    pub fn issue(&self, audience: &str) -> (String, u64) {
        self.issue_for(audience, "")
    }

    /// Issues a token for `audience` to `principal` (a client id).
    pub fn issue_for(&self, audience: &str, principal: &str) -> (String, u64) {
        let lifetime = *self.lifetime.lock().expect("token lifetime");
        let token = format!("sim.{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        self.tokens.lock().expect("tokens").insert(
            token.clone(),
            Issued {
                audience: audience.trim_end_matches('/').to_string(),
                principal: principal.to_string(),
                expires: Instant::now() + lifetime,
            },
        );
        (token, lifetime.as_secs())
    }

    /// Checks an `Authorization` header value for `audience`.
    pub fn check(&self, authorization: Option<&str>, audience: &str) -> Result<(), TokenProblem> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(TokenProblem::Missing)?;
        let tokens = self.tokens.lock().expect("tokens");
        let issued = tokens.get(token).ok_or(TokenProblem::Unknown)?;
        if Instant::now() >= issued.expires {
            return Err(TokenProblem::Expired);
        }
        if !issued
            .audience
            .eq_ignore_ascii_case(audience.trim_end_matches('/'))
        {
            return Err(TokenProblem::WrongAudience);
        }
        Ok(())
    }

    /// Who a valid bearer token (an `Authorization` value) was issued to.
    pub fn principal(&self, authorization: Option<&str>) -> Option<String> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        let tokens = self.tokens.lock().expect("tokens");
        tokens.get(token).map(|i| i.principal.clone())
    }

    /// How long new tokens live (tests shorten it to see a refresh).
    pub fn set_lifetime(&self, lifetime: Duration) {
        *self.lifetime.lock().expect("token lifetime") = lifetime;
    }

    /// Makes every token issued so far expired, as if time had passed.
    pub fn expire_all(&self) {
        let now = Instant::now();
        for issued in self.tokens.lock().expect("tokens").values_mut() {
            issued.expires = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_presence_audience_and_expiry() {
        let reg = TokenRegistry::new();
        let (token, ttl) = reg.issue("https://graph.microsoft.com/");
        assert_eq!(ttl, 3599);
        let header = format!("Bearer {token}");
        assert_eq!(
            reg.check(Some(&header), "https://graph.microsoft.com"),
            Ok(())
        );
        assert_eq!(
            reg.check(Some(&header), "https://management.azure.com"),
            Err(TokenProblem::WrongAudience)
        );
        assert_eq!(
            reg.check(None, "https://graph.microsoft.com"),
            Err(TokenProblem::Missing)
        );
        assert_eq!(
            reg.check(Some("Bearer nope"), "https://graph.microsoft.com"),
            Err(TokenProblem::Unknown)
        );
        reg.expire_all();
        assert_eq!(
            reg.check(Some(&header), "https://graph.microsoft.com"),
            Err(TokenProblem::Expired)
        );
    }
}
