//! Guards that keep the code a newcomer can live in: no source file over
//! 600 lines and no function over 80 lines unless a reason is written at
//! its top — a comment line `Long: <why>` among the first 20 lines of the
//! file, or among the comment and attribute lines right above the function.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 600;
const MAX_FN_LINES: usize = 80;

/// Every Rust source of the workspace (not `target/`, not the separately
/// built `fuzz/`).
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !["target", "fuzz", "node_modules"].contains(&name.as_str())
                && !name.starts_with('.')
            {
                sources(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

fn has_reason(lines: &[&str]) -> bool {
    lines.iter().any(|l| {
        l.trim_start()
            .trim_start_matches('/')
            .trim_start_matches('!')
            .trim_start()
            .starts_with("Long:")
    })
}

/// The name of the function a line starts, if it starts one.
fn fn_name(line: &str) -> Option<&str> {
    let mut rest = line.trim_start();
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
    ] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let rest = rest.strip_prefix("fn ")?;
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    Some(&rest[..end])
}

/// (name, first line, length) of every function with a body whose closing
/// brace sits at its own indentation.
fn functions<'a>(lines: &[&'a str]) -> Vec<(&'a str, usize, usize)> {
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = fn_name(line) else { continue };
        let indent = &line[..line.len() - line.trim_start().len()];
        let Some(open) = (i..lines.len()).find(|&j| {
            let l = lines[j].trim_end();
            l.ends_with('{') || l.ends_with(';')
        }) else {
            continue;
        };
        if lines[open].trim_end().ends_with(';') {
            continue; // a declaration without a body
        }
        let close = format!("{indent}}}");
        if let Some(end) = (open + 1..lines.len()).find(|&j| lines[j].trim_end() == close) {
            found.push((name, i, end - i + 1));
        }
    }
    found
}

/// The comment and attribute lines right above line `at`.
fn preamble<'a>(lines: &[&'a str], at: usize) -> Vec<&'a str> {
    let mut start = at;
    while start > 0 {
        let l = lines[start - 1].trim_start();
        if l.starts_with("//") || l.starts_with("#[") {
            start -= 1;
        } else {
            break;
        }
    }
    lines[start..at].to_vec()
}

#[test]
fn files_and_functions_stay_short_or_say_why() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(root, &mut files);
    assert!(files.len() > 100, "the sources were found: {}", files.len());
    let mut problems = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let shown = file.strip_prefix(root).unwrap().display();
        if lines.len() > MAX_FILE_LINES && !has_reason(&lines[..20.min(lines.len())]) {
            problems.push(format!("{shown}: {} lines", lines.len()));
        }
        for (name, at, len) in functions(&lines) {
            if len > MAX_FN_LINES && !has_reason(&preamble(&lines, at)) {
                problems.push(format!("{shown}:{}: fn {name} is {len} lines", at + 1));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "split these, or write `Long: <why>` at their top:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_guard_sees_functions_and_their_reasons() {
    let body = "fn short() {\n}\n// Long: a table\npub(crate) async fn long(\n    x: u8,\n) -> u8 {\n    x\n}\n";
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(functions(&lines), vec![("short", 0, 2), ("long", 3, 5)]);
    assert!(has_reason(&preamble(&lines, 3)));
    assert!(!has_reason(&preamble(&lines, 0)));
}
