//! The admin page's HTML: one layout, a few building blocks, everything
//! escaped. Server-rendered; the little JavaScript there is (live checking
//! in the editor) only adds to pages that work without it.

use std::fmt::Write;

use similar::{ChangeTag, TextDiff};

/// Escapes text for HTML content and attribute values.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A time in ms since the epoch, as `YYYY-MM-DD HH:MM:SS UTC`.
pub(super) fn when(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The signed-in staff member, for the page header.
pub(super) struct Who<'a> {
    pub username: &'a str,
    pub csrf: &'a str,
}

const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;background:#f4f6fa}
header{background:#1f2a44;color:#fff;padding:0 24px;display:flex;align-items:center;gap:24px;height:56px}
header .brand{font-weight:700;font-size:17px;letter-spacing:.3px}
header .brand span{color:#8fb4ff}
header nav a{color:#d6e0ff;text-decoration:none;margin-right:16px}
header nav a:hover{color:#fff}
header .who{margin-left:auto;display:flex;gap:12px;align-items:center;color:#c6cfe6}
header form{margin:0}
main{max-width:1100px;margin:24px auto;padding:0 24px}
h1{font-size:22px;margin:0 0 4px}
.sub{color:#5b6475;margin:0 0 20px}
.card{background:#fff;border:1px solid #dde2ec;border-radius:10px;padding:20px;margin-bottom:20px;box-shadow:0 1px 2px rgba(20,30,60,.04)}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;padding:10px 12px;border-bottom:1px solid #eceff5;vertical-align:top}
th{font-size:12px;text-transform:uppercase;letter-spacing:.5px;color:#6b7385;font-weight:600}
tr:last-child td{border-bottom:0}
a{color:#2f5bd3}
.btn{display:inline-block;border:1px solid #2f5bd3;background:#2f5bd3;color:#fff;border-radius:7px;padding:7px 14px;font:inherit;cursor:pointer;text-decoration:none}
.btn:hover{background:#2549ad}
.btn.secondary{background:#fff;color:#2f5bd3}
.btn.quiet{background:transparent;border-color:#7d89a8;color:#d6e0ff;padding:4px 10px}
.btn.danger{background:#fff;color:#b42318;border-color:#e3a39c}
textarea{width:100%;min-height:340px;font:13px/1.5 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;border:1px solid #c9d0dd;border-radius:8px;padding:12px;background:#fbfcfe}
input[type=text],input[type=password]{font:inherit;padding:8px 10px;border:1px solid #c9d0dd;border-radius:7px;width:100%}
label{display:block;font-weight:600;margin:12px 0 4px}
.row{display:flex;gap:12px;align-items:center;margin-top:14px}
.badge{display:inline-block;background:#e8eefc;color:#2f4a9a;border-radius:999px;padding:1px 10px;font-size:13px;font-weight:600}
.errors{background:#fff4f2;border:1px solid #f4c7c0;color:#8a1f11;border-radius:8px;padding:10px 14px;margin:12px 0}
.errors ul{margin:4px 0 0;padding-left:20px}
.ok{background:#eefbf2;border:1px solid #b7e4c7;color:#14532d;border-radius:8px;padding:10px 14px;margin:12px 0}
.muted{color:#6b7385}
pre.diff{background:#0f1629;color:#d8deea;border-radius:8px;padding:12px;overflow:auto;font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;margin:8px 0}
pre.diff .add{background:#12361f;color:#9ef0b5;display:block}
pre.diff .del{background:#3d1418;color:#ffb3b8;display:block}
pre.diff .ctx{display:block}
pre.body{background:#fbfcfe;border:1px solid #dde2ec;border-radius:8px;padding:12px;font:13px/1.45 ui-monospace,monospace;overflow:auto}
details summary{cursor:pointer;color:#2f5bd3}
.signin{max-width:380px;margin:80px auto}
"#;

/// A whole page.
pub(super) fn page(title: &str, who: Option<&Who<'_>>, body: &str) -> String {
    let nav = match who {
        Some(w) => format!(
            r#"<nav><a href="/">Documents</a><a href="/audit">Audit log</a></nav>
<div class="who">Signed in as <b>{u}</b>
<form method="post" action="/logout"><input type="hidden" name="csrf" value="{c}"><button class="btn quiet" type="submit">Sign out</button></form></div>"#,
            u = esc(w.username),
            c = esc(w.csrf)
        ),
        None => String::new(),
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{t} · Warren config</title><style>{CSS}</style></head>
<body><header><div class="brand">Warren <span>config</span></div>{nav}</header>
<main>{body}</main></body></html>"#,
        t = esc(title)
    )
}

/// Validation errors as a list.
pub(super) fn errors(problems: &[String]) -> String {
    if problems.is_empty() {
        return String::new();
    }
    let mut s =
        String::from(r#"<div class="errors" id="errors"><b>This cannot be published:</b><ul>"#);
    for p in problems {
        let _ = write!(s, "<li>{}</li>", esc(p));
    }
    s.push_str("</ul></div>");
    s
}

/// A line diff between two texts, coloured.
pub(super) fn diff(old: &str, new: &str) -> String {
    let d = TextDiff::from_lines(old, new);
    let mut s = String::from(r#"<pre class="diff" id="diff">"#);
    let mut changed = false;
    for change in d.iter_all_changes() {
        let (class, sign) = match change.tag() {
            ChangeTag::Delete => ("del", '-'),
            ChangeTag::Insert => ("add", '+'),
            ChangeTag::Equal => ("ctx", ' '),
        };
        changed |= change.tag() != ChangeTag::Equal;
        let line = change.value().trim_end_matches('\n');
        let _ = write!(s, r#"<span class="{class}">{sign} {}</span>"#, esc(line));
    }
    s.push_str("</pre>");
    if !changed {
        return r#"<p class="muted" id="diff">No changes.</p>"#.to_owned();
    }
    s
}

/// A stored unified diff (from the audit log), coloured.
pub(super) fn unified(text: &str) -> String {
    let mut s = String::from(r#"<pre class="diff">"#);
    for line in text.lines() {
        let class = if line.starts_with("+++") || line.starts_with("---") || line.starts_with("@@")
        {
            "ctx"
        } else if line.starts_with('+') {
            "add"
        } else if line.starts_with('-') {
            "del"
        } else {
            "ctx"
        };
        let _ = write!(s, r#"<span class="{class}">{}</span>"#, esc(line));
    }
    s.push_str("</pre>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(when(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(when(1_795_996_800_000), "2026-11-30 00:00:00 UTC");
        assert_eq!(when(951_782_400_000 + 3_723_000), "2000-02-29 01:02:03 UTC");
    }
}
