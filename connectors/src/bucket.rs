//! The token bucket, told the time: [`BucketLimit`] (how deep, how fast it refills)
//! and [`TokenBucket`] (take a token now, or learn how long until one is there; a
//! 429's pause). One model for both sides of a rate limit: the HTTP layer's
//! `RateLimiter` paces the bridge's calls with it (`http.rs` re-exports both), and
//! the Sentinel simulator answers ARM's per-operation throttling with it.

use std::time::Duration;

use tokio::time::Instant;

/// One token bucket's shape: it holds at most `burst` tokens and gains
/// `per_second` of them every second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketLimit {
    pub burst: u32,
    pub per_second: f64,
}

impl BucketLimit {
    /// At least one token and a positive, finite rate (what the config loader
    /// guarantees); anything else is clamped to that.
    pub(crate) fn sane(self) -> BucketLimit {
        BucketLimit {
            burst: self.burst.max(1),
            per_second: if self.per_second.is_finite() && self.per_second > 0.0 {
                self.per_second
            } else {
                f64::MIN_POSITIVE
            },
        }
    }

    /// The stricter of the two in each dimension.
    pub fn min(self, other: BucketLimit) -> BucketLimit {
        BucketLimit {
            burst: self.burst.min(other.burst),
            per_second: self.per_second.min(other.per_second),
        }
    }
}

/// A token bucket, told the time: no clock, no sleeping. `http::RateLimiter` drives it
/// (pacing the bridge's own calls), and the Sentinel simulator throttles with it
/// (ARM's buckets).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    limit: BucketLimit,
    tokens: f64,
    /// When `tokens` was last brought up to date.
    refilled: Instant,
    /// After a 429: nothing goes before this instant.
    paused_until: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: BucketLimit, now: Instant) -> TokenBucket {
        let limit = limit.sane();
        TokenBucket {
            limit,
            tokens: f64::from(limit.burst),
            refilled: now,
            paused_until: None,
        }
    }

    pub fn limit(&self) -> BucketLimit {
        self.limit
    }

    /// The tokens left as of the last take or refill (a fraction while one refills):
    /// what a server reports as its remaining quota.
    pub fn tokens(&self) -> f64 {
        self.tokens
    }

    /// Takes a token, or says how long until one is there.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(until) = self.paused_until {
            if now < until {
                return Err(until - now);
            }
            // The pause is over: the one request the server invited may go now;
            // the rest of the bucket fills at the normal rate from here.
            self.paused_until = None;
            self.tokens = 1.0;
            self.refilled = until;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - self.tokens;
        // Round up to the next microsecond so that the caller wakes with a token.
        let wait = Duration::from_secs_f64(missing / self.limit.per_second);
        Err(wait + Duration::from_micros(1))
    }

    /// The server refused a request with 429: empty the bucket and take nothing
    /// before `until` (a later pause already in force stands).
    pub fn pause_until(&mut self, until: Instant) {
        self.tokens = 0.0;
        if self.paused_until.is_none_or(|p| p < until) {
            self.paused_until = Some(until);
        }
    }

    fn refill(&mut self, now: Instant) {
        if now > self.refilled {
            let gained = (now - self.refilled).as_secs_f64() * self.limit.per_second;
            self.tokens = (self.tokens + gained).min(f64::from(self.limit.burst));
            self.refilled = now;
        }
    }
}
