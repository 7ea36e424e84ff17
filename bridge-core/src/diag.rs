//! Diagnostics for bad input: every problem found in a config or mapping file, each
//! with the file, line and column it points at, reported all at once.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is about the file as a whole (it cannot be read).
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

/// Everything wrong with the input. Displayed one diagnostic per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InputError {}

/// Collects diagnostics for one source text, turning byte offsets into line:column.
#[derive(Debug)]
pub struct Reporter<'a> {
    file: &'a Path,
    text: &'a str,
    pub diagnostics: Vec<Diagnostic>,
}

impl<'a> Reporter<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        Reporter {
            file,
            text,
            diagnostics: Vec::new(),
        }
    }

    /// Records a problem at a byte offset into the text.
    pub fn at(&mut self, offset: usize, message: impl Into<String>) {
        let (line, column) = line_col(self.text, offset);
        self.diagnostics.push(Diagnostic {
            file: self.file.to_path_buf(),
            line,
            column,
            message: message.into(),
        });
    }

    /// Records a problem about the whole file.
    pub fn whole_file(&mut self, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            file: self.file.to_path_buf(),
            line: 0,
            column: 0,
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.diagnostics.is_empty()
    }

    pub fn into_error(self) -> InputError {
        InputError {
            diagnostics: self.diagnostics,
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 9), (2, 3));
    }

    #[test]
    fn diagnostics_print_file_line_column() {
        let mut r = Reporter::new(Path::new("bridge.toml"), "x\ny = 2");
        r.at(2, "unknown key `y`");
        assert_eq!(
            r.into_error().to_string(),
            "bridge.toml:2:1: unknown key `y`"
        );
    }
}
