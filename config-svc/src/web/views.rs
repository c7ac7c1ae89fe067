//! The admin page's HTML, as maud templates: one layout and a function per
//! page. maud escapes every value it splices in, so no page builds HTML by
//! hand. Server-rendered; the little JavaScript there is (live checking in
//! the editor) only adds to pages that work without it.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use similar::{ChangeTag, TextDiff};
use warren_proto::config::{AuditEntry, Document, DocumentInfo, VersionInfo};

/// The signed-in staff member, for the page header and the forms.
pub(super) struct Who<'a> {
    pub username: &'a str,
    pub csrf: &'a str,
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

const CSS: &str = include_str!("admin.css");

/// Live checking while typing: posts the text to the form's `data-check`
/// address with the form's CSRF token and shows the answer's HTML.
const EDITOR_SCRIPT: &str = r"(function(){
  var form=document.getElementById('editor'), body=document.getElementById('body'), out=document.getElementById('live-check'), timer=null;
  function check(){
    fetch(form.dataset.check,{method:'POST',headers:{'content-type':'application/json','x-csrf-token':form.elements.csrf.value},body:JSON.stringify({body:body.value})})
      .then(function(r){return r.json();})
      .then(function(j){out.innerHTML=j.html;})
      .catch(function(){});
  }
  body.addEventListener('input',function(){clearTimeout(timer);timer=setTimeout(check,400);});
})();";

/// A whole page.
pub(super) fn page(title: &str, who: Option<&Who<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) " · Warren config" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    div.brand { "Warren " span { "config" } }
                    @if let Some(w) = who {
                        nav { a href="/" { "Documents" } a href="/audit" { "Audit log" } }
                        div.who {
                            "Signed in as " b { (w.username) }
                            form method="post" action="/logout" {
                                (csrf(w.csrf))
                                button.btn.quiet type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The hidden CSRF field every form that changes something carries.
fn csrf(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// Validation errors as a list.
pub(super) fn errors(problems: &[String]) -> Markup {
    html! {
        @if !problems.is_empty() {
            div.errors id="errors" {
                b { "This cannot be published:" }
                ul { @for p in problems { li { (p) } } }
            }
        }
    }
}

/// A line diff between two texts, coloured.
pub(super) fn diff(old: &str, new: &str) -> Markup {
    let d = TextDiff::from_lines(old, new);
    let changes: Vec<_> = d.iter_all_changes().collect();
    if changes.iter().all(|c| c.tag() == ChangeTag::Equal) {
        return html! { p.muted id="diff" { "No changes." } };
    }
    html! {
        pre.diff id="diff" {
            @for change in &changes {
                @let (class, sign) = match change.tag() {
                    ChangeTag::Delete => ("del", '-'),
                    ChangeTag::Insert => ("add", '+'),
                    ChangeTag::Equal => ("ctx", ' '),
                };
                span class=(class) { (sign) " " (change.value().trim_end_matches('\n')) }
            }
        }
    }
}

/// A stored unified diff (from the audit log), coloured.
fn unified(text: &str) -> Markup {
    let class = |line: &str| {
        if line.starts_with("+++") || line.starts_with("---") || line.starts_with("@@") {
            "ctx"
        } else if line.starts_with('+') {
            "add"
        } else if line.starts_with('-') {
            "del"
        } else {
            "ctx"
        }
    };
    html! { pre.diff { @for line in text.lines() { span class=(class(line)) { (line) } } } }
}

/// An error page.
pub(super) fn failure(who: Option<&Who<'_>>, message: &str) -> Markup {
    let body = html! {
        div.card {
            h1 { "That did not work" }
            div.errors { (message) }
            p { a href="/" { "Back to the documents" } }
        }
    };
    page("Error", who, body)
}

/// A change whose CSRF token did not match the session's.
pub(super) fn refused(who: &Who<'_>) -> Markup {
    let body = html! {
        div.card {
            h1 { "Refused" }
            div.errors {
                "This form is out of date or did not come from this site (bad CSRF token). \
                 Reload the page and try again."
            }
        }
    };
    page("Refused", Some(who), body)
}

/// A change posted after the session ended.
pub(super) fn signed_out() -> Markup {
    let body = html! {
        div.card.signin {
            h1 { "You are not signed in" }
            p {
                "Your session has ended, so nothing was changed. "
                a href="/login" { "Sign in" } " and try again."
            }
        }
    };
    page("Signed out", None, body)
}

/// The sign-in form; `csrf` is the double-submit token of its cookie.
pub(super) fn signin(
    csrf_token: &str,
    next: &str,
    username: &str,
    message: Option<&str>,
) -> Markup {
    let body = html! {
        div.card.signin {
            h1 { "Sign in" }
            p.sub { "Staff accounts are created with " code { "warren config-admin add-user" } "." }
            @if let Some(m) = message { div.errors id="signin-error" { (m) } }
            form method="post" action="/login" {
                (csrf(csrf_token))
                input type="hidden" name="next" value=(next);
                label for="username" { "Username" }
                input type="text" id="username" name="username" value=(username)
                    autocomplete="username" autofocus required;
                label for="password" { "Password" }
                input type="password" id="password" name="password"
                    autocomplete="current-password" required;
                div.row { button.btn type="submit" id="signin" { "Sign in" } }
            }
        }
    };
    page("Sign in", None, body)
}

/// The list of documents.
pub(super) fn documents(who: &Who<'_>, docs: &[DocumentInfo]) -> Markup {
    let body = html! {
        div.row style="justify-content:space-between;margin:0 0 16px" {
            div {
                h1 { "Documents" }
                p.sub { "The live game configuration. Changes reach the running game within a second of publishing." }
            }
            a.btn href="/new" { "New document" }
        }
        div.card { table id="documents" {
            thead { tr {
                th { "Document" } th { "Live version" } th { "Last edited by" }
                th { "Published" } th { "Schema" } th {}
            } }
            tbody {
                @for d in docs {
                    tr {
                        td { a.doc-link href={ "/docs/" (d.name) } { b { (d.name) } } }
                        td { span.badge { "v" (d.version) } }
                        td { (d.author) }
                        td.muted { (when(d.published_at_ms)) }
                        td { @if d.has_schema { "✓" } @else { "—" } }
                        td { a href={ "/docs/" (d.name) "/history" } { "History" } }
                    }
                }
                @if docs.is_empty() { tr { td.muted colspan="6" { "No documents yet." } } }
            }
        } }
    };
    page("Documents", Some(who), body)
}

/// What the editor shows: the live version, and the text being edited.
pub(super) struct Editor<'a> {
    pub live: &'a Document,
    pub has_schema: bool,
    pub body: &'a str,
    pub comment: &'a str,
    /// The version the text was started from.
    pub expected: i64,
    pub problems: &'a [String],
    pub notice: Option<String>,
}

/// The editor of a document.
pub(super) fn editor(who: &Who<'_>, v: &Editor<'_>) -> Markup {
    let name = v.live.name.as_str();
    let body = html! {
        h1 { (name) " " span.badge id="live-version" { "live: v" (v.live.version) } }
        p.sub {
            "Last published by " b { (v.live.author) } " on " (when(v.live.published_at_ms)) ". "
            @if v.has_schema { "Checked against its schema" } @else { "No schema" }
            " · " a href={ "/docs/" (name) "/history" } { "History" }
            " · " a href={ "/docs/" (name) "/schema" } { "Schema" }
        }
        @if let Some(n) = &v.notice { div.ok id="notice" { (n) } }
        @if v.expected != v.live.version {
            div.errors {
                "You started from version " (v.expected) " but the live version is now "
                (v.live.version) ". Review will show the difference against the live version; \
                 reload to start from it."
            }
        }
        div.card { form method="post" action={ "/docs/" (name) "/review" } id="editor"
            data-check={ "/docs/" (name) "/check" } {
            (csrf(who.csrf))
            input type="hidden" name="expected_version" value=(v.expected);
            label for="body" { "Document (JSON)" }
            textarea name="body" id="body" spellcheck="false" { (v.body) }
            div id="live-check" { (errors(v.problems)) }
            label for="comment" { "What changed and why (shown in the history)" }
            input type="text" name="comment" id="comment" value=(v.comment) maxlength="1024";
            div.row {
                button.btn type="submit" id="review" { "Review changes" }
                span.muted { "You will see the difference against the live version before anything is published." }
            }
        } }
        script { (PreEscaped(EDITOR_SCRIPT)) }
    };
    page(name, Some(who), body)
}

/// A change to review: the diff against the live version, and the buttons
/// to publish it or to go on editing.
pub(super) struct Review<'a> {
    pub live: &'a Document,
    pub text: &'a str,
    pub comment: &'a str,
    pub expected: i64,
}

/// The review of a change before it is published.
pub(super) fn review(who: &Who<'_>, r: &Review<'_>) -> Markup {
    let name = r.live.name.as_str();
    let next = r.live.version + 1;
    let hidden = html! {
        (csrf(who.csrf))
        input type="hidden" name="body" value=(r.text);
        input type="hidden" name="comment" value=(r.comment);
        input type="hidden" name="expected_version" value=(r.expected);
    };
    let body = html! {
        h1 { "Review: " (name) }
        p.sub {
            "Version " (next) " will replace the live version " (r.live.version)
            ". Lines in red go, lines in green come."
        }
        div.card {
            h3 style="margin-top:0" { "Changes against the live version" }
            (diff(&r.live.body, r.text))
            p.muted { "Comment: " @if r.comment.is_empty() { "(none)" } @else { (r.comment) } }
            div.row {
                form method="post" action={ "/docs/" (name) "/publish" } {
                    (hidden) button.btn type="submit" id="publish" { "Publish version " (next) }
                }
                form method="post" action={ "/docs/" (name) "/edit" } {
                    (hidden) button.btn.secondary type="submit" id="keep-editing" { "Keep editing" }
                }
            }
        }
    };
    page(&format!("Review {name}"), Some(who), body)
}

/// Every published version of a document, with a rollback button each.
pub(super) fn history(
    who: &Who<'_>,
    name: &str,
    versions: &[VersionInfo],
    notice: Option<String>,
) -> Markup {
    let live = versions.first().map_or(0, |v| v.version);
    let body = html! {
        h1 { (name) ": history" }
        p.sub {
            "Every published version, newest first. Rolling back publishes the old version \
             again as a new version; nothing is ever erased. "
            a href={ "/docs/" (name) } { "Edit" }
            " · " a href={ "/audit?name=" (name) } { "Audit log" }
        }
        @if let Some(n) = notice { div.ok id="notice" { (n) } }
        div.card { table id="history" {
            thead { tr { th { "Version" } th { "By" } th { "Published" } th { "Comment" } th {} } }
            tbody { @for v in versions { tr {
                td { a href={ "/docs/" (name) "/versions/" (v.version) } { b { "v" (v.version) } } }
                td { (v.author) }
                td.muted { (when(v.published_at_ms)) }
                td { (v.comment) }
                td {
                    @if v.version == live {
                        span.badge { "live" }
                    } @else {
                        form method="post" action={ "/docs/" (name) "/rollback" } style="margin:0" {
                            (csrf(who.csrf))
                            input type="hidden" name="to" value=(v.version);
                            button.btn.danger.rollback type="submit" id={ "rollback-" (v.version) } {
                                "Roll back to v" (v.version)
                            }
                        }
                    }
                }
            } } }
        } }
    };
    page(&format!("{name} history"), Some(who), body)
}

/// One old version, and how it differs from the live one.
pub(super) fn version(who: &Who<'_>, doc: &Document, live: &Document) -> Markup {
    let name = doc.name.as_str();
    let body = html! {
        h1 { (name) " " span.badge { "v" (doc.version) } }
        p.sub {
            "Published by " b { (doc.author) } " on " (when(doc.published_at_ms)) ". "
            (doc.comment) " · " a href={ "/docs/" (name) "/history" } { "History" }
        }
        div.card {
            h3 style="margin-top:0" { "This version" }
            pre.body { (doc.body) }
            h3 { "From the live version (v" (live.version) ") to this one" }
            (diff(&live.body, &doc.body))
        }
    };
    page(&format!("{name} v{}", doc.version), Some(who), body)
}

/// A document's JSON Schema, to edit.
pub(super) fn schema(who: &Who<'_>, name: &str, schema: &str, problems: &[String]) -> Markup {
    let body = html! {
        h1 { (name) ": schema" }
        p.sub {
            "A JSON Schema every version of this document must match. Leave it empty to \
             remove it. The live version must match a new schema. "
            a href={ "/docs/" (name) } { "Back to the editor" }
        }
        (errors(problems))
        div.card { form method="post" action={ "/docs/" (name) "/schema" } {
            (csrf(who.csrf))
            textarea name="schema" id="schema" spellcheck="false" { (schema) }
            div.row { button.btn type="submit" id="save-schema" { "Save schema" } }
        } }
    };
    page(&format!("{name} schema"), Some(who), body)
}

/// The form for a new document.
pub(super) fn new_document(
    who: &Who<'_>,
    name: &str,
    text: &str,
    schema: &str,
    problems: &[String],
) -> Markup {
    let body = html! {
        h1 { "New document" }
        p.sub {
            "A name of a-z, 0-9, _ - . and its first version. A schema is optional but \
             recommended: it stops mistakes before they reach the game."
        }
        (errors(problems))
        div.card { form method="post" action="/new" {
            (csrf(who.csrf))
            label for="name" { "Name" }
            input type="text" id="name" name="name" value=(name) required maxlength="64";
            label for="body" { "First version (JSON)" }
            textarea name="body" id="body" spellcheck="false" { (text) }
            label for="schema" { "JSON Schema (optional)" }
            textarea name="schema" id="schema" spellcheck="false" style="min-height:180px" { (schema) }
            div.row { button.btn type="submit" id="create" { "Create" } }
        } }
    };
    page("New document", Some(who), body)
}

/// The audit log, or one document's part of it.
pub(super) fn audit(who: &Who<'_>, name: Option<&str>, entries: &[AuditEntry]) -> Markup {
    let body = html! {
        h1 { "Audit log" @if let Some(n) = name { ": " (n) } }
        p.sub {
            "Every publish, rollback and schema change: who, when, from which version to \
             which, and what changed. Newest first (the last 500)."
        }
        div.card { table id="audit" {
            thead { tr {
                th { "When" } th { "Who" } th { "Action" } th { "Document" } th { "Versions" } th { "Change" }
            } }
            tbody {
                @for e in entries { tr {
                    td.muted { (when(e.at_ms)) }
                    td { b { (e.actor) } }
                    td { span.badge { (e.action) } }
                    td { a href={ "/docs/" (e.name) } { (e.name) } }
                    td {
                        @match e.action.as_str() {
                            "create" => { "v" (e.to_version) },
                            "schema" => "schema",
                            _ => { "v" (e.from_version) " → v" (e.to_version) },
                        }
                    }
                    td { details { summary { "Show change" } (unified(&e.change)) } }
                } }
                @if entries.is_empty() { tr { td.muted colspan="6" { "Nothing yet." } } }
            }
        } }
    };
    page("Audit log", Some(who), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let page = errors(&[r#"<a href="x">'&'</a>"#.to_owned()]).into_string();
        assert!(
            page.contains("&lt;a href=&quot;x&quot;&gt;'&amp;'&lt;/a&gt;"),
            "{page}"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(when(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(when(1_795_996_800_000), "2026-11-30 00:00:00 UTC");
        assert_eq!(when(951_782_400_000 + 3_723_000), "2000-02-29 01:02:03 UTC");
    }
}
