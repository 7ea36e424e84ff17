//! Positions inside the mapping file that the loader and the `[api]` checks both
//! report at: where byte `offset` of a string value sits in the file.

use std::ops::Range;

/// The byte offset in the file of byte `offset` of a string value, whose literal
/// (quotes included) spans `span`. Exact while the literal's text up to that point
/// equals the value (no escapes before it); otherwise the literal's start.
pub(crate) fn string_position(text: &str, span: Range<usize>, value: &str, offset: usize) -> usize {
    let Some(literal) = text.get(span.clone()) else {
        return span.start;
    };
    let quote = if literal.starts_with("\"\"\"") || literal.starts_with("'''") {
        3
    } else if literal.starts_with('"') || literal.starts_with('\'') {
        1
    } else {
        return span.start;
    };
    if literal.len() < 2 * quote {
        return span.start;
    }
    let mut start = span.start + quote;
    let mut inner = &literal[quote..literal.len() - quote];
    if quote == 3 {
        // A newline right after the opening quotes is not part of the value.
        if let Some(rest) = inner.strip_prefix("\r\n") {
            start += 2;
            inner = rest;
        } else if let Some(rest) = inner.strip_prefix('\n') {
            start += 1;
            inner = rest;
        }
    }
    match (inner.get(..offset), value.get(..offset)) {
        (Some(a), Some(b)) if a == b => start + offset,
        _ => span.start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_positions_follow_the_literal() {
        let text = "a = \"x{y}\"\nb = '''\nab{c}'''\nc = \"\\t{d}\"\n";
        assert_eq!(string_position(text, 4..10, "x{y}", 1), 6);
        assert_eq!(string_position(text, 15..27, "ab{c}", 2), 21);
        // An escape before the offset: fall back to the literal's start.
        assert_eq!(string_position(text, 32..39, "\t{d}", 1), 32);
    }
}
