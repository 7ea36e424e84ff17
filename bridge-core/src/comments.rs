//! Comments carried between an incident and its ticket: how a copy is written
//! (who said it, where and when, in plain text, cut to the target's limit), how the
//! bridge recognises its own copies (a marker at the start, besides the ids it
//! records), and how a comment is fingerprinted for the record. All pure;
//! `plan.rs` decides which comments to copy.

use sha2::{Digest, Sha256};

use crate::model::Comment;

mod plan;
pub use plan::{
    Claim, CommentCopy, CopyRules, INCIDENT_LIMIT, incident_fingerprint, plan_copies,
    ticket_fingerprint,
};

/// Every comment the bridge writes starts with this: a second line of defence
/// (after the recorded fingerprints) against copying its own copies back.
pub const MARKER: &str = "[itsm-bridge]";

/// Whether the bridge wrote this comment.
pub fn is_bridge_comment(text: &str) -> bool {
    text.trim_start().starts_with(MARKER)
}

/// The text with the marker in front (once).
pub fn marked(text: &str) -> String {
    if is_bridge_comment(text) {
        text.to_string()
    } else {
        format!("{MARKER} {text}")
    }
}

/// A stable name for a comment: its remote id where the API has one, otherwise a
/// hash of who wrote it, when, and what.
pub fn fingerprint(comment: &Comment) -> String {
    if let Some(id) = comment.id.as_deref().filter(|id| !id.is_empty()) {
        return format!("id:{id}");
    }
    let mut hash = Sha256::new();
    hash.update(comment.author.as_deref().unwrap_or("").as_bytes());
    hash.update([0]);
    hash.update(comment.created.to_rfc3339().as_bytes());
    hash.update([0]);
    hash.update(comment.text.as_bytes());
    let digest = hash.finalize();
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("h:{hex}")
}

/// The copy of `comment` written to the other side: the marker, who wrote it in
/// which system and when, then the text as plain text, cut to `limit` characters
/// with a visible note of how much was left out.
pub fn render_copy(comment: &Comment, system: &str, limit: usize) -> String {
    let author = comment
        .author
        .as_deref()
        .filter(|a| !a.trim().is_empty())
        .unwrap_or("someone");
    let header = format!(
        "{MARKER} {author} wrote in {system} at {}:\n",
        comment.created.format("%Y-%m-%d %H:%M UTC")
    );
    let body = html_to_text(&comment.text);
    let room = limit.saturating_sub(header.chars().count());
    let total = body.chars().count();
    if total <= room {
        return format!("{header}{body}");
    }
    // Leave room for the note itself.
    let note_room = 60;
    let keep = room.saturating_sub(note_room);
    let kept: String = body.chars().take(keep).collect();
    format!(
        "{header}{kept}\n… [cut by itsm-bridge: {} more characters]",
        total - keep
    )
}

/// Turns HTML (as Sentinel comments often are) into readable text; plain text
/// passes through unchanged.
pub fn html_to_text(text: &str) -> String {
    if !looks_like_html(text) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '<' {
            let mut tag = String::new();
            for t in chars.by_ref() {
                if t == '>' {
                    break;
                }
                tag.push(t);
            }
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase();
            let closing = tag.starts_with('/');
            match name.as_str() {
                "br" => out.push('\n'),
                "p" | "div" | "tr" | "h1" | "h2" | "h3" | "h4" | "ul" | "ol" if closing => {
                    out.push('\n')
                }
                "li" if !closing => out.push_str("\n- "),
                _ => {}
            }
        } else {
            out.push(c);
        }
    }
    let decoded = decode_entities(&out);
    // At most one blank line in a row, no trailing blanks.
    let mut lines: Vec<&str> = Vec::new();
    for line in decoded.lines().map(str::trim_end) {
        if line.trim().is_empty() && lines.last().is_none_or(|l| l.trim().is_empty()) {
            continue;
        }
        lines.push(line);
    }
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    lines.join("\n")
}

fn looks_like_html(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    [
        "<br", "<p>", "<p ", "</p>", "<div", "</div>", "<li", "<b>", "<i>", "<a ", "&nbsp;",
        "&amp;", "&lt;",
    ]
    .iter()
    .any(|t| lower.contains(t))
}

fn decode_entities(text: &str) -> String {
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn comment(text: &str) -> Comment {
        Comment {
            id: None,
            author: Some("Ana Ruiz".into()),
            created: Utc.with_ymd_and_hms(2026, 11, 22, 8, 11, 0).unwrap(),
            text: text.into(),
        }
    }

    #[test]
    fn a_copy_says_who_where_and_when_and_is_marked() {
        let copy = render_copy(&comment("Blocked the sender."), "Microsoft Defender", 4000);
        assert_eq!(
            copy,
            "[itsm-bridge] Ana Ruiz wrote in Microsoft Defender at 2026-11-22 08:11 UTC:\nBlocked the sender."
        );
        assert!(is_bridge_comment(&copy));
        assert!(!is_bridge_comment("Blocked the sender."));
    }

    #[test]
    fn html_from_sentinel_becomes_readable_text() {
        let html = "<p>Isolated <b>WS-0142</b> &amp; reset the password.</p><ul><li>ticket A</li><li>ticket B</li></ul>Done&nbsp;now";
        assert_eq!(
            html_to_text(html),
            "Isolated WS-0142 & reset the password.\n\n- ticket A\n- ticket B\nDone now"
        );
        assert_eq!(
            html_to_text("a < b and c > d"),
            "a < b and c > d",
            "plain text is left alone"
        );
    }

    #[test]
    fn long_comments_are_cut_with_a_visible_note() {
        let long = "x".repeat(10_000);
        let copy = render_copy(&comment(&long), "Jira", 1000);
        assert!(copy.chars().count() <= 1000, "{}", copy.chars().count());
        assert!(copy.contains("[cut by itsm-bridge:") && copy.contains("more characters]"));
    }

    #[test]
    fn fingerprints_prefer_ids_and_otherwise_tell_comments_apart() {
        let mut with_id = comment("x");
        with_id.id = Some("10021".into());
        assert_eq!(fingerprint(&with_id), "id:10021");
        assert_ne!(fingerprint(&comment("a")), fingerprint(&comment("b")));
        assert_eq!(fingerprint(&comment("a")), fingerprint(&comment("a")));
        assert_eq!(marked("[itsm-bridge] x"), "[itsm-bridge] x");
        assert_eq!(marked("x"), "[itsm-bridge] x");
    }
}
