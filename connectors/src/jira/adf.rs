//! Plain text ⇄ Atlassian Document Format (ADF), the rich-text JSON that Jira REST v3
//! demands for `description` and comment bodies. The bridge only deals in plain text:
//! text becomes a document of paragraphs, one per line; a document becomes text by
//! joining its blocks with `"\n"` and keeping the text of every node it does not know.
//! Plain text survives the round trip exactly.

use serde_json::{Value, json};

/// Inline node types: their text is concatenated inside the enclosing block.
const INLINE: &[&str] = &[
    "text",
    "hardBreak",
    "mention",
    "emoji",
    "inlineCard",
    "date",
    "status",
    "mediaInline",
    "placeholder",
    "inlineExtension",
];

/// A document with one paragraph per line. Empty lines become empty paragraphs
/// (ADF forbids empty text nodes), so `"a\n\nb"` keeps its blank line.
pub fn text_to_adf(text: &str) -> Value {
    let content: Vec<Value> = text
        .split('\n')
        .map(|line| {
            if line.is_empty() {
                json!({"type": "paragraph", "content": []})
            } else {
                json!({"type": "paragraph", "content": [{"type": "text", "text": line}]})
            }
        })
        .collect();
    json!({"type": "doc", "version": 1, "content": content})
}

/// The text of an ADF document: blocks joined with `"\n"`, text nodes flattened,
/// `hardBreak` as `"\n"`, mentions/emoji/cards by their text or URL, and the text
/// content of any node type this function does not know.
pub fn adf_to_text(doc: &Value) -> String {
    match doc {
        Value::Null => String::new(),
        // Tolerate v2-style plain strings (some instances echo them back).
        Value::String(s) => s.clone(),
        node => render(node),
    }
}

fn node_type(node: &Value) -> &str {
    node.get("type").and_then(Value::as_str).unwrap_or("")
}

fn attr<'a>(node: &'a Value, name: &str) -> Option<&'a str> {
    node.get("attrs")?.get(name)?.as_str()
}

fn render(node: &Value) -> String {
    match node_type(node) {
        "text" => node
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        "hardBreak" => "\n".to_string(),
        "mention" => attr(node, "text").unwrap_or("").to_string(),
        "emoji" => attr(node, "text")
            .or_else(|| attr(node, "shortName"))
            .unwrap_or("")
            .to_string(),
        "inlineCard" | "blockCard" | "embedCard" => attr(node, "url").unwrap_or("").to_string(),
        "date" => attr(node, "timestamp").unwrap_or("").to_string(),
        "status" => attr(node, "text").unwrap_or("").to_string(),
        _ => {
            let Some(children) = node.get("content").and_then(Value::as_array) else {
                return String::new();
            };
            let all_inline = children.iter().all(|c| INLINE.contains(&node_type(c)));
            let parts = children.iter().map(render);
            if all_inline {
                parts.collect()
            } else {
                parts.collect::<Vec<_>>().join("\n")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_round_trips_exactly() {
        let table = [
            "",
            "one line",
            "two\nlines",
            "blank\n\nline",
            "\nleading newline",
            "trailing newline\n",
            "\n\n",
            "  indented  and spaced  ",
            "tabs\tand \"quotes\" and \\ backslashes",
            "windows\r\nline ends",
            "unicode: ünïcödé ✓ 日本語 🚨",
            "Severity: Medium. Source: https://security.microsoft.com/incidents/41877",
        ];
        for text in table {
            let doc = text_to_adf(text);
            assert_eq!(adf_to_text(&doc), text, "round trip of {text:?}");
        }
    }

    #[test]
    fn text_becomes_one_paragraph_per_line_without_empty_text_nodes() {
        let doc = text_to_adf("a\n\nb");
        assert_eq!(
            doc,
            json!({"type":"doc","version":1,"content":[
                {"type":"paragraph","content":[{"type":"text","text":"a"}]},
                {"type":"paragraph","content":[]},
                {"type":"paragraph","content":[{"type":"text","text":"b"}]}
            ]})
        );
    }

    #[test]
    fn rich_documents_flatten_to_text() {
        let doc = json!({"type":"doc","version":1,"content":[
            {"type":"heading","attrs":{"level":2},"content":[{"type":"text","text":"Title"}]},
            {"type":"paragraph","content":[
                {"type":"text","text":"bold","marks":[{"type":"strong"}]},
                {"type":"text","text":" and "},
                {"type":"mention","attrs":{"id":"5b10","text":"@Ann"}},
                {"type":"hardBreak"},
                {"type":"emoji","attrs":{"shortName":":smile:","text":"😄"}},
                {"type":"inlineCard","attrs":{"url":"https://example.com/x"}}
            ]},
            {"type":"bulletList","content":[
                {"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"first"}]}]},
                {"type":"listItem","content":[{"type":"paragraph","content":[{"type":"text","text":"second"}]}]}
            ]},
            {"type":"codeBlock","content":[{"type":"text","text":"x = 1\ny = 2"}]},
            {"type":"someFutureBlock","content":[{"type":"paragraph","content":[{"type":"text","text":"kept"}]}]},
            {"type":"rule"}
        ]});
        assert_eq!(
            adf_to_text(&doc),
            "Title\nbold and @Ann\n😄https://example.com/x\nfirst\nsecond\nx = 1\ny = 2\nkept\n"
        );
    }

    #[test]
    fn null_and_plain_strings_are_tolerated() {
        assert_eq!(adf_to_text(&Value::Null), "");
        assert_eq!(adf_to_text(&json!("plain")), "plain");
    }
}
