//! Unit tests of `fetch`: credentials, redirects, denials.

use super::*;

fn url(text: &str) -> Url {
    Url::parse(text).expect("url")
}

#[test]
fn credentials_go_to_their_origin_only() {
    let upstream = url("https://enterprise.proxmox.com/debian/pve/");
    let creds = Credentials::basic(&upstream, "pve4b-1234567890", "0123456789abcdef", "rejected".into());
    let fetcher = Fetcher::new(Duration::from_secs(1), 0, None, Limits::default()).expect("client");
    let scoped = fetcher.for_upstream(Access { credentials: Some(creds), missing_hint: String::new() });
    let cases: &[(&str, bool)] = &[
        ("https://enterprise.proxmox.com/debian/pve/dists/bookworm/InRelease", true),
        ("https://enterprise.proxmox.com:443/debian/pbs/", true),
        ("https://enterprise.proxmox.com:8443/debian/pve/", false),
        ("http://enterprise.proxmox.com/debian/pve/", false),
        ("https://download.proxmox.com/debian/pve/", false),
        ("https://enterprise.proxmox.com.evil.example/debian/pve/", false),
    ];
    for (target, sent) in cases {
        assert_eq!(scoped.credentials_for(&url(target)).is_some(), *sent, "{target}");
        assert!(fetcher.credentials_for(&url(target)).is_none(), "{target}: unscoped fetcher has credentials");
    }
    let shown = format!("{:?} {:?}", scoped.access, scoped.access.credentials);
    assert!(!shown.contains("1234567890") && !shown.contains("0123456789abcdef"), "{shown}");
}

#[test]
fn redirects_follow_apts_rule() {
    let cases: &[(&str, &str, bool)] = &[
        ("https://h:8443/a", "http://h:8443/a", true),
        ("https://h/a", "http://h/a", true),
        ("https://h/a", "http://mirror.example/a", true),
        ("http://h:8080/a", "https://h:8080/a", false),
        ("http://h/a", "https://h/a", false),
        ("http://h/a", "http://mirror.example/a", false),
        ("https://h/a", "https://h/b", false),
        ("https://h/a", "https://mirror.example/a", false),
        ("http://h/a", "ftp://h/a", true),
    ];
    for (from, to, refused) in cases {
        assert_eq!(downgrades(&url(from), &url(to)), *refused, "{from} → {to}");
    }
}

#[test]
fn denied_is_final_and_says_why() {
    let e = FetchError::Denied { url: "https://h/x".into(), status: 401, hint: "needs a subscription".into() };
    assert!(!e.is_transient() && !e.is_not_found());
    assert_eq!(e.to_string(), "https://h/x: HTTP 401: needs a subscription");
}
