//! Prometheus' text exposition format (version 0.0.4), for both admin
//! endpoints' `/metrics`: one family per metric, a `# HELP` and a `# TYPE`
//! line, then one sample per label set.
//!
//! (The `prometheus-client` crate writes OpenMetrics instead, whose `# TYPE`
//! line names a counter without its `_total`: the dashboards and the console
//! test key on the 0.0.4 lines, so this small writer stays.)

use std::fmt::Write;

use axum::response::{IntoResponse, Response};

/// What a metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One metric and its samples.
#[derive(Debug)]
pub struct Family<'a> {
    /// The full name (a counter's ends in `_total`).
    pub name: &'a str,
    pub kind: Kind,
    pub help: &'a str,
    /// (label name, label value) pairs and the value, one per sample.
    pub samples: Vec<(Vec<(&'a str, &'a str)>, f64)>,
}

/// The families in the text format.
pub fn render(families: &[Family<'_>]) -> String {
    let mut out = String::new();
    for f in families {
        let kind = match f.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = write!(
            out,
            "# HELP {} {}\n# TYPE {} {kind}\n",
            f.name, f.help, f.name
        );
        for (labels, value) in &f.samples {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = writeln!(out, "{}{{{}}} {value}", f.name, labels.join(","));
        }
    }
    out
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The families as a `/metrics` response.
pub fn response(families: &[Family<'_>]) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        render(families),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_in_the_text_format() {
        let text = render(&[Family {
            name: "warren_service_messages_total",
            kind: Kind::Counter,
            help: "Messages a service handled.",
            samples: vec![
                (vec![("service", "echo")], 25.0),
                (vec![("service", "a\"b")], 0.5),
            ],
        }]);
        assert_eq!(
            text,
            "# HELP warren_service_messages_total Messages a service handled.\n\
             # TYPE warren_service_messages_total counter\n\
             warren_service_messages_total{service=\"echo\"} 25\n\
             warren_service_messages_total{service=\"a\\\"b\"} 0.5\n"
        );
    }
}
