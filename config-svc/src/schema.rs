//! JSON bodies and their schemas: parsing, validating, and the canonical
//! text a version is stored as (pretty-printed with sorted keys, so diffs
//! show what changed and nothing else).

use serde_json::Value;

use crate::ConfigError;

/// The largest document or schema accepted, in bytes.
pub(crate) const MAX_BODY: usize = 256 * 1024;

/// Parses a document body; a syntax error is reported with its line and
/// column.
pub(crate) fn parse(what: &str, text: &str) -> Result<Value, ConfigError> {
    if text.len() > MAX_BODY {
        return Err(ConfigError::Invalid(vec![format!(
            "the {what} is {} bytes; at most {MAX_BODY} are accepted",
            text.len()
        )]));
    }
    serde_json::from_str(text).map_err(|e| {
        ConfigError::Invalid(vec![format!(
            "the {what} is not JSON: {} (line {}, column {})",
            strip_position(&e.to_string()),
            e.line(),
            e.column()
        )])
    })
}

fn strip_position(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}

/// The text a value is stored as.
pub(crate) fn canonical(value: &Value) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    s.push('\n');
    s
}

/// Checks that `schema` is a usable JSON Schema.
pub(crate) fn compile(schema: &Value) -> Result<jsonschema::Validator, ConfigError> {
    jsonschema::validator_for(schema).map_err(|e| {
        ConfigError::Invalid(vec![format!("the schema is not a valid JSON Schema: {e}")])
    })
}

/// Every way `body` breaks `schema`, each prefixed with where in the
/// document it is (`/path/to/field`, or `(document)` for the top).
pub(crate) fn validate(schema: &Value, body: &Value) -> Result<(), ConfigError> {
    let validator = compile(schema)?;
    let problems: Vec<String> = validator
        .iter_errors(body)
        .map(|e| {
            let path = e.instance_path().to_string();
            let path = if path.is_empty() {
                "(document)".to_owned()
            } else {
                path
            };
            format!("{path}: {e}")
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// Document names: 1–64 of `a-z 0-9 _ - .`, starting with a letter or digit.
pub(crate) fn check_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        })
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(ConfigError::BadRequest(format!(
            "bad document name {name:?}: use 1 to 64 of a-z, 0-9, _ - . starting with a letter or digit"
        )))
    }
}

/// A unified diff between two stored texts.
pub(crate) fn unified_diff(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validation_names_the_field_and_the_rule() {
        let schema = json!({
            "type": "object",
            "properties": {"n": {"type": "integer", "minimum": 1}},
            "required": ["n"],
            "additionalProperties": false
        });
        assert!(validate(&schema, &json!({"n": 3})).is_ok());
        let Err(ConfigError::Invalid(p)) = validate(&schema, &json!({"n": 0, "x": 1})) else {
            panic!("should be refused");
        };
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().any(|m| m.starts_with("/n:")), "{p:?}");
        assert!(p.iter().any(|m| m.starts_with("(document):")), "{p:?}");
    }

    #[test]
    fn syntax_errors_say_where() {
        let Err(ConfigError::Invalid(p)) = parse("document", "{\n  \"a\": ,\n}") else {
            panic!("should be refused");
        };
        assert!(p[0].contains("line 2"), "{p:?}");
    }

    #[test]
    fn names() {
        assert!(check_name("chat").is_ok());
        assert!(check_name("shop.items-2").is_ok());
        for bad in ["", "Chat", "-x", "a b", "a/b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_diff_shows_the_changed_line() {
        let d = unified_diff("{\n  \"a\": 1\n}\n", "{\n  \"a\": 2\n}\n", "v1", "v2");
        assert!(
            d.contains("-  \"a\": 1") && d.contains("+  \"a\": 2"),
            "{d}"
        );
    }
}
