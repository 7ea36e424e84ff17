//! Plain-text tables and CSV quoting for the commands' output. Both treat every
//! cell as untrusted (titles, ids and errors come from remote systems): a table
//! cell never carries a raw control character to the terminal, and a CSV cell
//! never reaches a spreadsheet as a formula.

use std::fmt;

/// A table printed with aligned columns.
#[derive(Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; control characters in its cells are escaped (see
    /// [`escape_controls`]), so a terminal escape sequence in a title is shown,
    /// never obeyed.
    pub fn row(&mut self, row: Vec<String>) {
        self.rows
            .push(row.into_iter().map(|cell| escape_controls(&cell)).collect());
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(cell.chars().count());
                }
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &[String]| -> fmt::Result {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    out.push_str(cell);
                } else {
                    let pad = widths[i].saturating_sub(cell.chars().count());
                    out.push_str(cell);
                    out.push_str(&" ".repeat(pad + 2));
                }
            }
            writeln!(f, "{}", out.trim_end())
        };
        line(f, &self.header)?;
        for row in &self.rows {
            line(f, row)?;
        }
        Ok(())
    }
}

/// Text for a terminal: C0/C1 control characters (ESC, CR, newline, tab, DEL, …)
/// are written as Rust escapes (`\u{1b}`, `\n`), and the Unicode bidirectional
/// controls that reorder what is shown (U+200E/F, U+202A–E, U+2066–9) as
/// `\u{…}`. Everything else is left as it is.
pub fn escape_controls(s: &str) -> String {
    if !s.chars().any(needs_escape) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else if needs_escape(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// One CSV cell (RFC 4180), safe to open in a spreadsheet: a value starting with
/// `=`, `+`, `-`, `@`, a tab or a carriage return, which Excel, LibreOffice and
/// Google Sheets would read as a formula, gets a leading `'` (OWASP's advice for
/// CSV injection); the cell is then quoted when it needs it. The JSONL export is
/// the exact one: its values are never changed.
pub fn csv_field(s: &str) -> String {
    let neutral;
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        neutral = format!("'{s}");
        neutral.as_str()
    } else {
        s
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let mut t = Table::new(&["a", "bb"]);
        t.row(vec!["xyz".into(), "1".into()]);
        assert_eq!(t.to_string(), "a    bb\nxyz  1\n");
    }

    #[test]
    fn quotes_csv_fields() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
    }

    #[test]
    fn csv_cells_never_start_a_formula() {
        assert_eq!(
            csv_field("=HYPERLINK(\"http://x\")"),
            "\"'=HYPERLINK(\"\"http://x\"\")\""
        );
        assert_eq!(csv_field("+1"), "'+1");
        assert_eq!(csv_field("-2+3"), "'-2+3");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("\tcmd"), "'\tcmd");
        assert_eq!(csv_field("\r=1"), "\"'\r=1\"");
        assert_eq!(csv_field("SEC-1"), "SEC-1", "a dash inside is harmless");
        assert_eq!(csv_field(""), "");
    }

    #[test]
    fn table_cells_escape_terminal_controls() {
        let mut t = Table::new(&["title"]);
        t.row(vec![
            "\u{1b}]0;pwned\u{7}\u{1b}[2Jx\r\nforged\u{202e}txt".into(),
        ]);
        let shown = t.to_string();
        assert_eq!(
            shown,
            "title\n\\u{1b}]0;pwned\\u{7}\\u{1b}[2Jx\\r\\nforged\\u{202e}txt\n"
        );
        assert!(!shown.contains('\u{1b}'));
        assert_eq!(escape_controls("plain, ünïcode ✓"), "plain, ünïcode ✓");
    }
}
