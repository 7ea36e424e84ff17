//! Log lines on stderr: text for people, or one JSON object per line for a SIEM
//! (`--log-format json`, `ITSM_BRIDGE_LOG_FORMAT=json`, or `[log] format` for
//! `run`). A JSON line holds the time, level, target and message, the event's
//! own fields (`incident`, `ticket`, `error`, …) and the fields of every span it
//! happened in (`pair` from `cycle`/`sweep`, `job` from the daemon's job span)
//! at its top level, and `spans`, the names of those spans outermost first.
//! `serde_json` escapes every control character, so a remote text can never
//! forge a line.

use std::io::{IsTerminal, Write};

use bridge_core::config::LogFormat;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// The environment variable that picks the format when `--log-format` is not given.
pub const FORMAT_VARIABLE: &str = "ITSM_BRIDGE_LOG_FORMAT";

/// Logs go to stderr; `RUST_LOG` sets the level (default: info for the bridge,
/// warnings only when `quiet`).
pub fn init(format: LogFormat, quiet: bool) {
    let default = if quiet {
        "warn"
    } else {
        "warn,itsm_bridge=info,bridge_core=info,connectors=info"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    match format {
        LogFormat::Text => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false)
                .try_init();
        }
        LogFormat::Json => {
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(JsonLines {
                    make_writer: std::io::stderr,
                })
                .try_init();
        }
    }
}

/// The format named by `ITSM_BRIDGE_LOG_FORMAT`, if set; a value that is not a
/// format is bad input naming the variable.
pub fn format_from_env() -> Result<Option<LogFormat>, String> {
    match std::env::var(FORMAT_VARIABLE) {
        Err(_) => Ok(None),
        Ok(text) => LogFormat::parse(text.trim()).map(Some).ok_or_else(|| {
            format!("error: {FORMAT_VARIABLE}=`{text}` is not a log format; set it to text or json")
        }),
    }
}

/// Writes each event as one JSON object on one line (of stderr, but for tests).
struct JsonLines<W> {
    make_writer: W,
}

/// A span's fields, kept in its extensions until it closes.
struct SpanFields(Map<String, Value>);

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        attributes.record(&mut Fields(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<SpanFields>() {
                values.record(&mut Fields(&mut fields.0));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut line = Map::new();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        line.insert("timestamp".into(), now.into());
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        let mut spans = Vec::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                spans.push(Value::from(span.name()));
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    line.extend(fields.0.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        if !spans.is_empty() {
            line.insert("spans".into(), Value::Array(spans));
        }
        // The event's own fields win over its spans' of the same name.
        event.record(&mut Fields(&mut line));
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        let _ = self.make_writer.make_writer().write_all(text.as_bytes());
    }
}

/// Records fields as JSON values: numbers and booleans as such, `%` and `?`
/// values as their text.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), value.to_string().into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What the layer wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl Write for Written {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(bytes)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The lines `f`'s events make, each parsed as JSON.
    fn lines_of(f: impl FnOnce()) -> Vec<Map<String, Value>> {
        let written = Written::default();
        let sink = written.clone();
        let layer = JsonLines {
            make_writer: move || sink.clone(),
        };
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
        let bytes = written.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[test]
    fn span_fields_and_event_fields_land_at_the_top_level() {
        let lines = lines_of(|| {
            let job = tracing::info_span!("job", job = 3_u64);
            let _job = job.enter();
            let cycle = tracing::info_span!("cycle", pair = %"defender->jira");
            let _cycle = cycle.enter();
            tracing::info!(incident = %"101", ticket = %"SEC-1", adopted = false, "ticket linked");
        });
        let line = &lines[0];
        assert_eq!(line["pair"], "defender->jira");
        assert_eq!(line["job"], 3);
        assert_eq!(line["spans"], serde_json::json!(["job", "cycle"]));
        assert_eq!(line["incident"], "101");
        assert_eq!(line["ticket"], "SEC-1");
        assert_eq!(line["adopted"], false);
        assert_eq!(line["message"], "ticket linked");
        assert_eq!(line["level"], "INFO");
    }

    #[test]
    fn a_hostile_value_stays_inside_its_line() {
        let lines = lines_of(|| {
            tracing::warn!(error = %"boom\n{\"level\":\"INFO\"}\u{1b}[2J", "write-back failed");
        });
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["error"], "boom\n{\"level\":\"INFO\"}\u{1b}[2J");
    }
}
