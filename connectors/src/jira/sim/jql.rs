//! The JQL subset the Jira simulator understands: the lexer, the parser, validation
//! against the simulator's projects and users, matching an issue, and `ORDER BY`.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::{SimIssue, SimState};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Str(String),
    Word(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

const RESERVED: &[&str] = &[
    "and", "or", "not", "order", "by", "in", "is", "empty", "null", "asc", "desc", "was", "changed",
];

fn err(message: impl std::fmt::Display) -> String {
    format!("Error in the JQL Query: {message}")
}

pub fn tokenize(input: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = input.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                toks.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            '"' | '\'' => {
                let quote = c;
                let start = i;
                i += 1;
                let mut s = String::new();
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err(err(format!(
                            "the quoted string starting at character {} is not terminated",
                            start + 1
                        )));
                    };
                    i += 1;
                    if c == quote {
                        break;
                    }
                    if c != '\\' {
                        s.push(c);
                        continue;
                    }
                    let Some(&e) = chars.get(i) else {
                        return Err(err("a backslash ends the query"));
                    };
                    i += 1;
                    match e {
                        '"' | '\'' | '\\' | ' ' => s.push(e),
                        'n' => s.push('\n'),
                        'r' => s.push('\r'),
                        't' => s.push('\t'),
                        'u' => {
                            let hex: String = chars.get(i..i + 4).unwrap_or(&[]).iter().collect();
                            let code = u32::from_str_radix(&hex, 16)
                                .ok()
                                .filter(|_| hex.len() == 4)
                                .and_then(char::from_u32)
                                .ok_or_else(|| {
                                    err(format!("'\\u{hex}' is not a valid unicode escape"))
                                })?;
                            s.push(code);
                            i += 4;
                        }
                        other => {
                            return Err(err(format!(
                                "'\\{other}' is an illegal JQL escape sequence (character {i})"
                            )));
                        }
                    }
                }
                toks.push(Tok::Str(s));
            }
            '=' => {
                toks.push(Tok::Op("="));
                i += 1;
            }
            '~' => {
                toks.push(Tok::Op("~"));
                i += 1;
            }
            '!' | '>' | '<' => {
                let next = chars.get(i + 1).copied();
                let op = match (c, next) {
                    ('!', Some('=')) => "!=",
                    ('!', Some('~')) => "!~",
                    ('>', Some('=')) => ">=",
                    ('<', Some('=')) => "<=",
                    ('>', _) => ">",
                    ('<', _) => "<",
                    _ => {
                        return Err(err(format!(
                            "the character '!' at position {} must be followed by '=' or '~'",
                            i + 1
                        )));
                    }
                };
                i += op.len();
                toks.push(Tok::Op(op));
            }
            c if c.is_alphanumeric() || "_-.:@/*".contains(c) => {
                let start = i;
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_alphanumeric() || "_-.:@/*".contains(*c))
                {
                    i += 1;
                }
                toks.push(Tok::Word(chars[start..i].iter().collect()));
            }
            other => {
                return Err(err(format!(
                    "the character '{other}' is a reserved JQL character. You must enclose it in a string or use the escape '\\u{:04x}' instead. (line 1, character {})",
                    other as u32,
                    i + 1
                )));
            }
        }
    }
    Ok(toks)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Ge,
    Gt,
    Le,
    Lt,
    Like,
    NotLike,
    In,
    NotIn,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Ge => ">=",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Lt => "<",
            Op::Like => "~",
            Op::NotLike => "!~",
            Op::In => "in",
            Op::NotIn => "not in",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Clause {
        field: String,
        op: Op,
        values: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub filter: Option<Expr>,
    /// (field, descending)
    pub order: Vec<(String, bool)>,
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

fn describe(t: Option<&Tok>) -> String {
    match t {
        None => "the end of the query".into(),
        Some(Tok::Str(s)) => format!("\"{s}\""),
        Some(Tok::Word(w)) => format!("'{w}'"),
        Some(Tok::Op(o)) => format!("'{o}'"),
        Some(Tok::LParen) => "'('".into(),
        Some(Tok::RParen) => "')'".into(),
        Some(Tok::Comma) => "','".into(),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        let found = self.keyword(kw);
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect(&mut self, tok: &Tok) -> Result<(), String> {
        if self.peek() == Some(tok) {
            self.pos += 1;
            Ok(())
        } else {
            Err(err(format!(
                "expecting {} but got {}",
                describe(Some(tok)),
                describe(self.peek())
            )))
        }
    }

    fn name(&mut self, what: &str) -> Result<String, String> {
        match self.peek().cloned() {
            Some(Tok::Word(w)) if !RESERVED.contains(&w.to_ascii_lowercase().as_str()) => {
                self.pos += 1;
                Ok(w)
            }
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Ok(s)
            }
            other => Err(err(format!(
                "expecting {what} but got {}",
                describe(other.as_ref())
            ))),
        }
    }

    fn query(&mut self) -> Result<Query, String> {
        let filter = if self.peek().is_none() || self.keyword("order") {
            None
        } else {
            Some(self.or()?)
        };
        let mut order = Vec::new();
        if self.eat_keyword("order") {
            if !self.eat_keyword("by") {
                return Err(err(format!(
                    "expecting 'by' but got {}",
                    describe(self.peek())
                )));
            }
            loop {
                let field = self.name("a field name")?.to_ascii_lowercase();
                let descending = if self.eat_keyword("desc") {
                    true
                } else {
                    self.eat_keyword("asc");
                    false
                };
                order.push((field, descending));
                if self.peek() != Some(&Tok::Comma) {
                    break;
                }
                self.pos += 1;
            }
            if order.len() > 7 {
                return Err(err("the ORDER BY clause can have at most 7 fields"));
            }
        }
        if let Some(t) = self.peek() {
            return Err(err(format!(
                "expecting either 'OR' or 'AND' but got {}",
                describe(Some(t))
            )));
        }
        Ok(Query { filter, order })
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.eat_keyword("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.eat_keyword("and") {
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat_keyword("not") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let inner = self.or()?;
            self.expect(&Tok::RParen)?;
            return Ok(inner);
        }
        self.clause()
    }

    fn clause(&mut self) -> Result<Expr, String> {
        let field = self.name("a field name")?.to_ascii_lowercase();
        let op = match self.peek().cloned() {
            Some(Tok::Op(o)) => {
                self.pos += 1;
                match o {
                    "=" => Op::Eq,
                    "!=" => Op::Ne,
                    ">=" => Op::Ge,
                    ">" => Op::Gt,
                    "<=" => Op::Le,
                    "<" => Op::Lt,
                    "~" => Op::Like,
                    _ => Op::NotLike,
                }
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("in") => {
                self.pos += 1;
                Op::In
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("not") => {
                self.pos += 1;
                if !self.eat_keyword("in") {
                    return Err(err(format!(
                        "expecting 'in' but got {}",
                        describe(self.peek())
                    )));
                }
                Op::NotIn
            }
            other => {
                return Err(err(format!(
                    "expecting an operator after '{field}' but got {}",
                    describe(other.as_ref())
                )));
            }
        };
        let values = if matches!(op, Op::In | Op::NotIn) {
            self.expect(&Tok::LParen)?;
            let mut values = vec![self.name("a value")?];
            while self.peek() == Some(&Tok::Comma) {
                self.pos += 1;
                values.push(self.name("a value")?);
            }
            self.expect(&Tok::RParen)?;
            values
        } else {
            vec![self.name("a value")?]
        };
        Ok(Expr::Clause { field, op, values })
    }
}

pub fn parse(input: &str) -> Result<Query, String> {
    let toks = tokenize(input)?;
    Parser { toks, pos: 0 }.query()
}

/// A date literal and its precision.
fn parse_date(field: &str, s: &str) -> Result<(DateTime<Utc>, chrono::Duration), String> {
    for format in ["%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Ok((t.and_utc(), chrono::Duration::minutes(1)));
        }
    }
    for format in ["%Y-%m-%d", "%Y/%m/%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, format) {
            let t = d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
            return Ok((t, chrono::Duration::days(1)));
        }
    }
    Err(format!(
        "Date value '{s}' for field '{field}' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd'."
    ))
}

fn unsupported(field: &str, op: Op) -> String {
    format!(
        "The operator '{}' is not supported by the '{field}' field.",
        op.text()
    )
}

/// Checks fields, operators and values against the instance (Jira answers 400
/// for a project or key that does not exist).
pub(super) fn validate(expr: &Expr, state: &SimState) -> Result<(), String> {
    match expr {
        Expr::And(a, b) | Expr::Or(a, b) => {
            validate(a, state)?;
            validate(b, state)
        }
        Expr::Not(a) => validate(a, state),
        Expr::Clause { field, op, values } => {
            let list_ops = [Op::Eq, Op::Ne, Op::In, Op::NotIn];
            match field.as_str() {
                "project" => {
                    if !list_ops.contains(op) {
                        return Err(unsupported(field, *op));
                    }
                    for v in values {
                        if state.project(v).is_none() {
                            return Err(format!(
                                "The value '{v}' does not exist for the field 'project'."
                            ));
                        }
                    }
                    Ok(())
                }
                "key" | "issuekey" => {
                    if !list_ops.contains(op) {
                        return Err(unsupported(field, *op));
                    }
                    for v in values {
                        if v.parse::<u64>().is_err() && state.find(v).is_none() {
                            return Err(format!(
                                "An issue with key '{v}' does not exist for field 'key'."
                            ));
                        }
                    }
                    Ok(())
                }
                "labels" | "status" | "statuscategory" | "resolution" | "assignee" => {
                    if list_ops.contains(op) {
                        Ok(())
                    } else {
                        Err(unsupported(field, *op))
                    }
                }
                "id" => {
                    if !list_ops.contains(op) {
                        return Err(unsupported(field, *op));
                    }
                    match values.iter().find(|v| v.parse::<u64>().is_err()) {
                        Some(v) => Err(format!("The value '{v}' is not a valid issue id.")),
                        None => Ok(()),
                    }
                }
                "updated" | "created" => {
                    if matches!(op, Op::Like | Op::NotLike | Op::In | Op::NotIn) {
                        return Err(unsupported(field, *op));
                    }
                    values
                        .iter()
                        .try_for_each(|v| parse_date(field, v).map(|_| ()))
                }
                "summary" | "text" => {
                    if matches!(op, Op::Like | Op::NotLike) {
                        Ok(())
                    } else {
                        Err(unsupported(field, *op))
                    }
                }
                other => Err(format!(
                    "Field '{other}' does not exist or you do not have permission to view it."
                )),
            }
        }
    }
}

fn any_eq(values: &[String], op: Op, test: impl Fn(&str) -> bool) -> bool {
    let hit = values.iter().any(|v| test(v));
    match op {
        Op::Eq | Op::In => hit,
        _ => !hit,
    }
}

/// Whether `issue` matches a validated expression.
pub(super) fn matches(expr: &Expr, issue: &SimIssue, state: &SimState) -> bool {
    match expr {
        Expr::And(a, b) => matches(a, issue, state) && matches(b, issue, state),
        Expr::Or(a, b) => matches(a, issue, state) || matches(b, issue, state),
        Expr::Not(a) => !matches(a, issue, state),
        Expr::Clause { field, op, values } => match field.as_str() {
            "project" => any_eq(values, *op, |v| {
                state
                    .project(v)
                    .is_some_and(|p| p.key.eq_ignore_ascii_case(&issue.project))
            }),
            "key" | "issuekey" | "id" => any_eq(values, *op, |v| {
                v == issue.id.to_string() || v.eq_ignore_ascii_case(&issue.key)
            }),
            "labels" => any_eq(values, *op, |v| issue.labels.iter().any(|l| l == v)),
            "status" => any_eq(values, *op, |v| v.eq_ignore_ascii_case(&issue.status)),
            "statuscategory" => {
                let name = match issue.status_category.as_str() {
                    "new" => "To Do",
                    "indeterminate" => "In Progress",
                    "done" => "Done",
                    _ => "",
                };
                any_eq(values, *op, |v| {
                    v.eq_ignore_ascii_case(&issue.status_category) || v.eq_ignore_ascii_case(name)
                })
            }
            "resolution" => any_eq(values, *op, |v| {
                issue
                    .resolution
                    .as_deref()
                    .map_or(v.eq_ignore_ascii_case("unresolved"), |r| {
                        r.eq_ignore_ascii_case(v)
                    })
            }),
            "assignee" => any_eq(values, *op, |v| {
                issue.assignee.as_deref().is_some_and(|a| {
                    a == v
                        || state
                            .user(a)
                            .and_then(|u| u.email.as_deref())
                            .is_some_and(|e| e.eq_ignore_ascii_case(v))
                })
            }),
            "updated" | "created" => {
                let t = if field == "updated" {
                    issue.updated
                } else {
                    issue.created
                };
                let Ok((at, precision)) = parse_date(field, &values[0]) else {
                    return false;
                };
                match op {
                    Op::Ge => t >= at,
                    Op::Gt => t >= at + precision,
                    Op::Le => t < at + precision,
                    Op::Lt => t < at,
                    Op::Eq => t >= at && t < at + precision,
                    _ => !(t >= at && t < at + precision),
                }
            }
            "summary" | "text" => {
                let hit = issue
                    .summary
                    .to_lowercase()
                    .contains(&values[0].to_lowercase());
                (*op == Op::Like) == hit
            }
            _ => false,
        },
    }
}

fn compare(a: &SimIssue, b: &SimIssue, field: &str) -> Ordering {
    match field {
        "updated" => a.updated.cmp(&b.updated),
        "created" => a.created.cmp(&b.created),
        "key" | "issuekey" => a.project.cmp(&b.project).then(a.number().cmp(&b.number())),
        "id" => a.id.cmp(&b.id),
        "summary" => a.summary.cmp(&b.summary),
        "status" => a.status.cmp(&b.status),
        "priority" => {
            let rank = |p: &str| super::PRIORITIES.iter().position(|x| *x == p);
            rank(&a.priority).cmp(&rank(&b.priority))
        }
        _ => Ordering::Equal,
    }
}

/// Sorts by the ORDER BY fields (default: newest id first), then by id.
pub fn sort(issues: &mut [&SimIssue], order: &[(String, bool)]) {
    issues.sort_by(|a, b| {
        if order.is_empty() {
            return b.id.cmp(&a.id);
        }
        order
            .iter()
            .map(|(field, desc)| {
                let o = compare(a, b, field);
                if *desc { o.reverse() } else { o }
            })
            .find(|o| o.is_ne())
            .unwrap_or_else(|| a.id.cmp(&b.id))
    });
}

/// ORDER BY fields the simulator can sort on.
pub fn sortable(field: &str) -> bool {
    matches!(
        field,
        "updated" | "created" | "key" | "issuekey" | "id" | "summary" | "status" | "priority"
    )
}
