//! Small checks of single values: names, URLs, GUIDs, ARM names, schedules that
//! fire, CA bundles, sizes, rates and durations.

use super::*;

pub(super) fn unknown_reference(
    table: &str,
    name: &str,
    known: &BTreeMap<String, Named>,
) -> String {
    if known.is_empty() {
        format!("there is no [[{table}]] named `{name}`")
    } else {
        let names: Vec<&str> = known.keys().map(String::as_str).collect();
        format!(
            "there is no [[{table}]] named `{name}`; the names are: {}",
            names.join(", ")
        )
    }
}

/// `[a-z0-9][a-z0-9_-]*`: names go into Jira labels and correlation ids.
pub(super) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

pub(super) fn valid_project_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// An absolute http(s) URL without credentials, returned without a trailing `/`.
/// The error completes a sentence that starts with the key.
pub(super) fn check_url(url: &str, https_only: bool) -> Result<String, String> {
    let expected = if https_only {
        "an https:// URL"
    } else {
        "an http:// or https:// URL"
    };
    let rest = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => rest,
        (None, Some(rest)) if !https_only => rest,
        _ => {
            return Err(format!(
                "must be {expected}, e.g. \"https://host.example.com\""
            ));
        }
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || url.chars().any(char::is_whitespace) {
        return Err(format!(
            "`{url}` is not a valid URL; write {expected} with a host name"
        ));
    }
    if authority.contains('@') {
        return Err(
            "must not carry a user name or password (credentials are not kept in the config file); remove them"
                .to_string(),
        );
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// A schedule that fires at least once in the next five years (so `0 0 30 2 *`,
/// February 30th, is refused; a leap day is not).
pub(super) fn fires(schedule: Schedule) -> Result<Schedule, String> {
    let now = chrono::Utc::now();
    match schedule.next_after(now) {
        Some(t) if t - now <= chrono::Duration::days(5 * 366) => Ok(schedule),
        _ => Err(format!(
            "cron line `{}` never fires (no such date); check the day of month against the month",
            schedule.as_str()
        )),
    }
}

/// `8-4-4-4-12` hexadecimal digits.
pub(super) fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A DNS name with at least two labels (a tenant's verified domain).
pub(super) fn is_domain(text: &str) -> bool {
    let labels: Vec<&str> = text.split('.').collect();
    text.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Whether an http URL's authority (what follows `http://`) is loopback:
/// `localhost`, `127.0.0.0/8` or `[::1]`, with any port.
pub(super) fn is_loopback_authority(rest: &str) -> bool {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Sentinel's ARM names, as Azure documents them: the subscription a GUID; a
/// resource group 1–90 letters, digits, `_`, `-`, `.` or `()`, not ending in
/// `.`; a Log Analytics workspace 4–63 letters, digits and `-`, starting and
/// ending with a letter or digit.
pub(super) fn check_arm_name(key: &str, value: &str) -> Result<(), String> {
    let fine = match key {
        "subscription_id" => is_guid(value),
        "resource_group" => {
            (1..=90).contains(&value.chars().count())
                && !value.ends_with('.')
                && value
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '(' | ')'))
        }
        "workspace_name" => {
            (4..=63).contains(&value.len())
                && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !value.starts_with('-')
                && !value.ends_with('-')
        }
        _ => true,
    };
    if fine {
        return Ok(());
    }
    let grammar = match key {
        "subscription_id" => {
            "a subscription id is a GUID like \"33333333-3333-3333-3333-333333333333\""
        }
        "resource_group" => {
            "a resource group name is 1-90 letters, digits, `_`, `-`, `.` or parentheses, not ending in `.`"
        }
        _ => {
            "a workspace name is 4-63 letters, digits and `-`, starting and ending with a letter or digit"
        }
    };
    Err(format!(
        "{key} `{value}` is not a valid Azure name; {grammar} (copy it from the workspace's resource id)"
    ))
}

/// `YYYY-MM-DD`, optionally `-preview`: the shape of every ARM api-version.
pub(super) fn is_api_version(text: &str) -> bool {
    let date = text.strip_suffix("-preview").unwrap_or(text);
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok() && date.len() == 10
}

/// Checks what `run` would do with `[http] ca_bundle`: the file can be read and
/// holds at least one PEM certificate whose base64 decodes to a DER sequence.
/// The error is the whole message.
pub(super) fn check_ca_bundle(path: &Path) -> Result<(), String> {
    use base64::Engine;
    let text = std::fs::read(path).map_err(|e| {
        format!(
            "ca_bundle {}: cannot read it ({e}); check the path, or remove ca_bundle to trust only the system's CAs",
            path.display()
        )
    })?;
    let not_pem = || {
        format!(
            "ca_bundle {} is not a PEM certificate bundle; give a file of `-----BEGIN CERTIFICATE-----` blocks (convert DER with `openssl x509 -inform der -in ca.cer -out ca.pem`)",
            path.display()
        )
    };
    let text = String::from_utf8_lossy(&text);
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut certificates = 0;
    let mut rest = text.as_ref();
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let end = after.find(END).ok_or_else(not_pem)?;
        let body: String = after[..end].split_whitespace().collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| not_pem())?;
        if der.len() < 2 || der[0] != 0x30 {
            return Err(not_pem());
        }
        certificates += 1;
        rest = &after[end + END.len()..];
    }
    if certificates == 0 {
        return Err(not_pem());
    }
    Ok(())
}

/// `"16MiB"`, `"512KiB"`, `"1GiB"`, `"65536"` (bytes); `KB`, `MB`, `GB` are read
/// as their binary counterparts. The error completes a sentence that starts with
/// the key.
pub(super) fn parse_size(text: &str) -> Result<u64, String> {
    let problem = || {
        format!(
            "`{text}` is not a size; write a number and a unit, e.g. \"16MiB\", \"512KiB\" or \"1GiB\""
        )
    };
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits);
    let number: u64 = number.parse().map_err(|_| problem())?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "KB" | "K" => 1 << 10,
        "MiB" | "MB" | "M" => 1 << 20,
        "GiB" | "GB" | "G" => 1 << 30,
        _ => return Err(problem()),
    };
    number.checked_mul(scale).ok_or_else(problem)
}

/// `"10/s"`, `"600/min"`, `"3600/h"` (`m`, `sec` and `hour` are understood too):
/// requests and the period they are counted over.
pub(super) fn parse_rate(text: &str) -> Result<(u32, Duration), String> {
    let shape = "rate_limit must look like \"10/s\", \"600/min\" or \"3600/h\"";
    let Some((number, unit)) = text.split_once('/') else {
        return Err(format!("{shape}; `{text}` has no `/`"));
    };
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        other => return Err(format!("{shape}; `{other}` is not s, min or h")),
    };
    match number.trim().parse::<u32>() {
        Ok(0) => Err(format!(
            "{shape}, with at least 1 request; remove it for the kind's default"
        )),
        Ok(n) => Ok((n, per)),
        Err(_) => Err(format!(
            "{shape}; `{}` is not a whole number of requests",
            number.trim()
        )),
    }
}

/// `"500ms"`, `"30s"`, `"2m"`, `"1h"`. The error completes a sentence that starts
/// with the key.
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let problem = || {
        format!(
            "`{text}` is not a duration; write a number and a unit: \"500ms\", \"30s\", \"2m\" or \"1h\""
        )
    };
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().map_err(|_| problem())?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.checked_mul(60).ok_or_else(problem)?),
        "h" => Duration::from_secs(number.checked_mul(3600).ok_or_else(problem)?),
        _ => return Err(problem()),
    };
    if duration.is_zero() {
        return Err("must be more than zero, e.g. \"30s\"".to_string());
    }
    Ok(duration)
}
