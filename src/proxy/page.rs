//! The 502 page: what a developer sees instead of the app when the upstream does not
//! answer — which upstream, whether Sockpit runs it, and what it last printed.

use std::fmt::Write as _;

use super::Proxy;
use super::process::ProcessState;

/// The page, as HTML. `show_output` is false for a request whose `Host` is not one of
/// Sockpit's own names: a DNS-rebinding page must not read the command line (it may
/// carry secrets) or the upstream's output.
/// `error` says why the upstream gave no answer (`connection refused …`).
pub fn html(proxy: &Proxy, error: &str, show_output: bool) -> String {
    let mut body = String::new();
    let upstream = escape(&proxy.upstream.origin());
    let _ = write!(
        body,
        "<h1>502 Bad Gateway</h1><p>Sockpit could not reach the upstream <code>{upstream}</code>: {}.</p>",
        escape(error)
    );
    let mut restarting = false;
    match &proxy.process {
        Some(p) => {
            let s = p.status();
            restarting = matches!(
                s.state,
                ProcessState::Starting | ProcessState::Exited | ProcessState::CrashLoop
            );
            if show_output {
                let _ = write!(
                    body,
                    "<p>Sockpit runs it: <code>{}</code> — <b>{}</b>.</p>",
                    escape(p.command()),
                    escape(&s.detail)
                );
                let tail = p.tail();
                if tail.is_empty() {
                    body.push_str("<p>It has printed nothing yet.</p>");
                } else {
                    let _ = write!(
                        body,
                        "<h2>Its last output</h2><pre>{}</pre>",
                        escape(&tail.join("\n"))
                    );
                }
            } else {
                body.push_str("<p>Sockpit runs it (open this page through localhost to see how it is doing).</p>");
            }
        }
        None => {
            let _ = write!(
                body,
                "<p>Sockpit did not start it (<code>[proxy] command</code> is not set): start your server on {upstream}, or set <code>command</code> so Sockpit runs it.</p>"
            );
        }
    }
    if restarting {
        body.push_str("<p>This page reloads every 2 seconds until it answers.</p>");
    }
    let refresh = if restarting {
        "<meta http-equiv=\"refresh\" content=\"2\">"
    } else {
        ""
    };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">{refresh}<title>502 · Sockpit proxy</title>\
<style>body{{font:15px system-ui,sans-serif;max-width:52rem;margin:3rem auto;padding:0 1rem;color:#1f2328}}\
pre{{background:#f6f8fa;padding:1rem;overflow:auto;font-size:13px}}code{{background:#f6f8fa;padding:0 .2em}}</style>\
</head><body>{body}</body></html>"
    )
}

/// The same, as one line of text (for clients that do not ask for HTML).
pub fn text(proxy: &Proxy, error: &str, show_output: bool) -> String {
    let who = match &proxy.process {
        Some(p) if show_output => format!(" (Sockpit runs it: {})", p.status().detail),
        Some(_) => " (Sockpit runs it)".into(),
        None => " (Sockpit did not start it: [proxy] command is not set)".into(),
    };
    format!(
        "502 Bad Gateway: Sockpit could not reach the upstream {}: {}{who}\n",
        proxy.upstream, error
    )
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, UpstreamUrl};

    #[test]
    fn output_is_escaped_and_hidden_from_foreign_hosts() {
        let mut config = Config::default();
        config.proxy.upstream = Some(UpstreamUrl::parse("http://127.0.0.1:8001").unwrap());
        config.proxy.command = Some("python manage.py runserver".into());
        let proxy = Proxy::new(&config, None).unwrap();
        let p = proxy.process.as_ref().unwrap();
        p.keep_line_for_test("<script>alert(1)</script> SECRET");
        let why = "connection refused";
        let page = html(&proxy, why, true);
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; SECRET"));
        assert!(!page.contains("<script>"));
        assert!(page.contains("http://127.0.0.1:8001"));
        assert!(page.contains("python manage.py runserver"));
        let foreign = html(&proxy, why, false);
        assert!(!foreign.contains("SECRET"));
        assert!(!foreign.contains("runserver"));
        assert!(!text(&proxy, why, false).contains("runserver"));
    }
}
