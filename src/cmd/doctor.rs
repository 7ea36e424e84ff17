//! `itsm-bridge doctor`: check the config exactly as `check` does (exit 2 on a
//! problem), then try every source and ticket system with read-only requests and
//! print one line per check, with what to do about each failure. Exit 0 when
//! nothing failed, 1 otherwise. The probes and the advice are
//! `connectors::doctor`'s; this module prints.

use std::path::Path;
use std::process::ExitCode;

use bridge_core::config;
use connectors::doctor::{self, Report, Status};

use crate::{CmdResult, Failure};

/// Where fix text wraps.
const WIDTH: usize = 100;

pub async fn run(path: &Path) -> CmdResult {
    let config = super::load_config(path)?;
    config::check_secrets(&config).map_err(|e| Failure::Input(e.to_string()))?;
    let report = doctor::diagnose(&config)
        .await
        .map_err(|e| Failure::Input(e.to_string()))?;
    print!("{}", render(&path.display().to_string(), &report));
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The report as plain text: a heading per system, a line per check (status word,
/// check name, what was seen), and under each failure or warning what to do.
pub fn render(config_path: &str, report: &Report) -> String {
    let mut out = format!("itsm-bridge doctor: {config_path}\n");
    let name_width = report
        .checks()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0)
        .min(28);
    for system in &report.systems {
        out.push_str(&format!(
            "\n{} {} ({}, {})\n",
            system.section, system.name, system.kind, system.base_url
        ));
        for check in &system.checks {
            out.push_str(&format!(
                "  {:<4}  {:<name_width$}  {}\n",
                check.status.label(),
                check.name,
                check.detail
            ));
            if let Some(fix) = &check.fix {
                let indent = 2 + 4 + 2;
                out.push_str(&wrap(&format!("fix: {fix}"), indent, WIDTH));
            }
        }
    }
    let (passed, failed, warned, skipped) = (
        report.count(Status::Pass),
        report.count(Status::Fail),
        report.count(Status::Warn),
        report.count(Status::Skip),
    );
    out.push_str(&format!(
        "\n{passed} passed, {failed} failed, {warned} warning(s), {skipped} skipped; \
         doctor only reads, nothing was written\n"
    ));
    out
}

/// `text` broken at spaces into lines of at most `width` columns (a longer word
/// stays whole), each indented by `indent`, the lines after the first by 5 more
/// (under the text after `fix: `).
fn wrap(text: &str, indent: usize, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    let mut first = true;
    for word in text.split_whitespace() {
        let lead = if first { indent } else { indent + 5 };
        if !line.is_empty() && lead + line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&format!("{}{line}\n", " ".repeat(lead)));
            line.clear();
            first = false;
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let lead = if first { indent } else { indent + 5 };
        out.push_str(&format!("{}{line}\n", " ".repeat(lead)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use connectors::doctor::{Check, SystemReport};

    #[test]
    fn renders_a_line_per_check_and_wraps_the_fix() {
        let report = Report {
            systems: vec![SystemReport {
                section: "source",
                name: "defender".into(),
                kind: "graph",
                base_url: "https://graph.microsoft.com".into(),
                checks: vec![
                    Check::pass("Entra ID token", "issued"),
                    Check::fail(
                        "list incidents",
                        "GET /v1.0/security/incidents?$top=1: HTTP 403 Forbidden",
                        "add the Microsoft Graph application permission SecurityIncident.ReadWrite.All \
                         to the app registration and grant admin consent; SecurityIncident.Read.All \
                         alone is not enough",
                    ),
                ],
            }],
        };
        let text = render("bridge.toml", &report);
        assert!(
            text.contains("\nsource defender (graph, https://graph.microsoft.com)\n"),
            "{text}"
        );
        assert!(text.contains("  OK    Entra ID token  issued\n"), "{text}");
        assert!(
            text.contains("  FAIL  list incidents  GET /v1.0/security/incidents?$top=1"),
            "{text}"
        );
        assert!(
            text.contains("\n        fix: add the Microsoft Graph"),
            "{text}"
        );
        assert!(
            text.lines()
                .filter(|l| l.starts_with("        "))
                .all(|l| l.chars().count() <= WIDTH),
            "{text}"
        );
        assert!(
            text.contains("1 passed, 1 failed, 0 warning(s), 0 skipped"),
            "{text}"
        );
    }

    #[test]
    fn wrap_keeps_words_whole() {
        assert_eq!(wrap("fix: a b c", 2, 9), "  fix: a\n       b\n       c\n");
        assert_eq!(
            wrap("fix: averyveryverylongword", 2, 10),
            "  fix:\n       averyveryverylongword\n"
        );
    }
}
