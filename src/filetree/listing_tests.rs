//! Tests of the autoindex scanner against pages as nginx, Apache (table and pre) and lighttpd
//! write them, and of which links count as tree entries.

use super::*;
use proptest::prelude::*;
use time::macros::datetime;

const NGINX: &str = "<html>\r\n<head><title>Index of /iso/</title></head>\r\n<body>\r\n\
<h1>Index of /iso/</h1><hr><pre><a href=\"../\">../</a>\r\n\
<a href=\"old/\">old/</a>                                               01-Jan-2024 00:00                   -\r\n\
<a href=\"SHA256SUMS\">SHA256SUMS</a>                                         24-Apr-2024 10:58                1234\r\n\
<a href=\"a%20b%26c.iso\">a b&amp;c.iso</a>                                       24-Apr-2024 10:57                  42\r\n\
<a href=\"proxmox-backup-server_3.2-1-with-a-name-longer-than-fifty.iso\">proxmox-backup-server_3.2-1-with-a-name-longer..&gt;</a> 24-Apr-2024 10:57          1327753216\r\n\
</pre><hr></body>\r\n</html>\r\n";

const APACHE_TABLE: &str = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<html>\n <head>\n\
<title>Index of /iso</title>\n </head>\n <body>\n<h1>Index of /iso</h1>\n  <table>\n\
<tr><th valign=\"top\"><img src=\"/icons/blank.gif\" alt=\"[ICO]\"></th><th><a href=\"?C=N;O=D\">Name</a></th><th><a href=\"?C=M;O=A\">Last modified</a></th><th><a href=\"?C=S;O=A\">Size</a></th><th><a href=\"?C=D;O=A\">Description</a></th></tr>\n\
<tr><th colspan=\"5\"><hr></th></tr>\n\
<tr><td valign=\"top\"><img src=\"/icons/back.gif\" alt=\"[PARENTDIR]\"></td><td><a href=\"/\">Parent Directory</a></td><td>&nbsp;</td><td align=\"right\">  - </td><td>&nbsp;</td></tr>\n\
<tr><td valign=\"top\"><img src=\"/icons/folder.gif\" alt=\"[DIR]\"></td><td><a href=\"old/\">old/</a></td><td align=\"right\">2024-01-01 00:00  </td><td align=\"right\">  - </td><td>&nbsp;</td></tr>\n\
<tr><td valign=\"top\"><img src=\"/icons/unknown.gif\" alt=\"[   ]\"></td><td><A HREF='proxmox-ve_8.2-1.iso'>proxmox-ve_8.2-1.iso</A></td><td align=\"right\">2024-04-24 10:57  </td><td align=\"right\">1.2G</td><td>&nbsp;</td></tr>\n\
<tr><th colspan=\"5\"><hr></th></tr>\n</table>\n<address>Apache/2.4.57 (Debian) Server at example.org Port 80</address>\n</body></html>\n";

const APACHE_PRE: &str = "<pre><img src=\"/icons/blank.gif\" alt=\"Icon \"> <a href=\"?C=N;O=D\">Name</a>                    <a href=\"?C=M;O=A\">Last modified</a>      <a href=\"?C=S;O=A\">Size</a>  <a href=\"?C=D;O=A\">Description</a><hr><img src=\"/icons/back.gif\" alt=\"[PARENTDIR]\"> <a href=\"/\">Parent Directory</a>                             -   \n\
<img src=\"/icons/unknown.gif\" alt=\"[   ]\"> <a href=\"SHA256SUMS\">SHA256SUMS</a>              24-Apr-2024 10:58  1.2K  \n\
<hr></pre>\n";

const LIGHTTPD: &str = "<table><tbody>\n\
<tr class=\"d\"><td class=\"n\"><a href=\"../\">Parent Directory</a>/</td><td class=\"m\">&nbsp;</td><td class=\"s\">- &nbsp;</td><td class=\"t\">Directory</td></tr>\n\
<tr class=\"d\"><td class=\"n\"><a href=\"old/\">old</a>/</td><td class=\"m\">2024-Jan-01 00:00:00</td><td class=\"s\">- &nbsp;</td><td class=\"t\">Directory</td></tr>\n\
<tr><td class=\"n\"><a href=\"x.iso\">x.iso</a></td><td class=\"m\">2024-Apr-24 10:57:12</td><td class=\"s\">1.2G</td><td class=\"t\">application/x-iso9660-image</td></tr>\n\
</tbody></table>\n";

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

fn minute(t: time::OffsetDateTime) -> Option<ListedTime> {
    Some(ListedTime { unix: t.unix_timestamp(), precision: 60 })
}

/// (path, is a directory, size, date) of one entry.
type Summary = (String, bool, ListedSize, Option<ListedTime>);

fn summary(page: &str, html: &str) -> Vec<Summary> {
    let base = url("http://h/iso/");
    entries(&url(page), &base, html).into_iter().map(|e| (e.path, e.is_dir, e.size, e.mtime)).collect()
}

#[test]
fn server_formats() {
    let jan = minute(datetime!(2024-01-01 00:00 UTC));
    let apr57 = minute(datetime!(2024-04-24 10:57 UTC));
    let apr58 = minute(datetime!(2024-04-24 10:58 UTC));
    let g12 = ListedSize::Approx { bytes: (1.2 * (1u64 << 30) as f64) as u64, tolerance: 1 << 30 };
    let exact = ListedTime { unix: datetime!(2024-04-24 10:57:12 UTC).unix_timestamp(), precision: 1 };
    let long = "proxmox-backup-server_3.2-1-with-a-name-longer-than-fifty.iso";
    let cases: Vec<(&str, &str, Vec<Summary>)> = vec![
        (
            "nginx",
            NGINX,
            vec![
                ("old".into(), true, ListedSize::Unknown, jan),
                ("SHA256SUMS".into(), false, ListedSize::Exact(1234), apr58),
                ("a b&c.iso".into(), false, ListedSize::Exact(42), apr57),
                (long.into(), false, ListedSize::Exact(1327753216), apr57),
            ],
        ),
        (
            "apache table",
            APACHE_TABLE,
            vec![("old".into(), true, ListedSize::Unknown, jan), ("proxmox-ve_8.2-1.iso".into(), false, g12, apr57)],
        ),
        (
            "apache pre",
            APACHE_PRE,
            vec![(
                "SHA256SUMS".into(),
                false,
                ListedSize::Approx { bytes: (1.2f64 * 1024.0) as u64, tolerance: 1024 },
                apr58,
            )],
        ),
        (
            "lighttpd",
            LIGHTTPD,
            vec![
                ("old".into(), true, ListedSize::Unknown, Some(ListedTime { unix: jan.unwrap().unix, precision: 1 })),
                ("x.iso".into(), false, g12, Some(exact)),
            ],
        ),
    ];
    for (what, html, want) in cases {
        assert_eq!(summary("http://h/iso/", html), want, "{what}");
    }
}

#[test]
fn which_links_are_entries() {
    let base = url("http://h/iso/");
    let page = url("http://h/iso/sub/");
    // (href, expected path relative to the base; None = not an entry)
    let cases: &[(&str, Option<&str>)] = &[
        ("x.iso", Some("sub/x.iso")),
        ("deeper/", Some("sub/deeper")),
        ("/iso/sub/abs.iso", Some("sub/abs.iso")),
        ("http://h/iso/sub/full.iso", Some("sub/full.iso")),
        ("http://h:80/iso/sub/port.iso", Some("sub/port.iso")),
        ("%C3%A9t%C3%A9.iso", Some("sub/été.iso")),
        ("./a:b.iso", Some("sub/a:b.iso")),
        ("./x.iso", Some("sub/x.iso")),
        ("./deeper:1/", Some("sub/deeper:1")),
        ("a%3Ab.iso", Some("sub/a:b.iso")),
        ("a:b.iso", None),
        ("./../x.iso", None),
        ("././x.iso", None),
        ("./%2e%2e/x.iso", None),
        ("sub2/./x.iso", None),
        ("../", None),
        ("..", None),
        ("/iso/", None),
        ("/iso/other.iso", None),
        ("/", None),
        ("./", None),
        ("a/../b.iso", None),
        ("%2e%2e/x", None),
        ("?C=M;O=A", None),
        ("x.iso?download", None),
        ("#top", None),
        ("http://elsewhere/iso/sub/x.iso", None),
        ("https://h/iso/sub/x.iso", None),
        ("http://h:8080/iso/sub/x.iso", None),
        ("a%2Fb.iso", None),
        ("bad%zz.iso", None),
        ("%00.iso", None),
        ("a%0Ab.iso", None),
        ("a//b.iso", None),
        ("%FF.iso", None),
        ("", None),
    ];
    for (href, want) in cases {
        let got = resolve(&page, &base, href).map(|(_, p, _)| p);
        assert_eq!(got.as_deref(), *want, "{href:?}");
    }
}

#[test]
fn sizes_and_dates() {
    let cases: &[(&str, ListedSize)] = &[
        ("0", ListedSize::Exact(0)),
        ("1327753216", ListedSize::Exact(1327753216)),
        ("-", ListedSize::Unknown),
        ("4K", ListedSize::Approx { bytes: 4096, tolerance: 1024 }),
        ("629M", ListedSize::Approx { bytes: 629 << 20, tolerance: 1 << 20 }),
        ("2T", ListedSize::Approx { bytes: 2 << 40, tolerance: 1 << 40 }),
        ("-1K", ListedSize::Unknown),
        ("K", ListedSize::Unknown),
        ("1.2.3M", ListedSize::Unknown),
        ("NaNK", ListedSize::Unknown),
        ("99999999999999999999999", ListedSize::Unknown),
        ("Directory", ListedSize::Unknown),
    ];
    for (token, want) in cases {
        assert_eq!(parse_size(token), *want, "{token:?}");
    }
    let dates: &[(&str, Option<time::Date>)] = &[
        ("24-Apr-2024", Some(time::macros::date!(2024 - 04 - 24))),
        ("2024-04-24", Some(time::macros::date!(2024 - 04 - 24))),
        ("2024-apr-24", Some(time::macros::date!(2024 - 04 - 24))),
        ("31-Feb-2024", None),
        ("24-Foo-2024", None),
        ("24-04", None),
        ("1-1-1", None),
    ];
    for (token, want) in dates {
        assert_eq!(parse_date(token), *want, "{token:?}");
    }
    assert_eq!(parse_time("10:57"), Some((10 * 3600 + 57 * 60, 60)));
    assert_eq!(parse_time("10:57:12"), Some((10 * 3600 + 57 * 60 + 12, 1)));
    for bad in ["24:00", "10:60", "1:05", "10:5", "a:b", "10"] {
        assert_eq!(parse_time(bad), None, "{bad:?}");
    }
}

#[test]
fn admits() {
    let t = ListedTime { unix: 600, precision: 60 };
    assert!(t.admits(600) && t.admits(659) && !t.admits(599) && !t.admits(660));
    assert!(ListedSize::Exact(5).admits(5) && !ListedSize::Exact(5).admits(6));
    let approx = ListedSize::Approx { bytes: 1000, tolerance: 100 };
    assert!(approx.admits(900) && approx.admits(1100) && !approx.admits(1101));
    assert!(!ListedSize::Unknown.admits(0));
}

#[test]
fn entities_and_attributes() {
    assert_eq!(attribute(" href=\"a&amp;b\"", "href").as_deref(), Some("a&b"));
    assert_eq!(attribute(" class=x HREF = 'y z'", "href").as_deref(), Some("y z"));
    assert_eq!(attribute(" href=plain title=t", "href").as_deref(), Some("plain"));
    assert_eq!(attribute(" data-href=\"no\" title=t", "href"), None);
    assert_eq!(decode_entities("&lt;&#65;&#x42;&bogus;&"), "<AB&bogus;&");
}

proptest! {
    #[test]
    fn scanner_never_panics(html in "(<a href=\"[a-z%./?#]{0,8}\">[a-z ]{0,5}</a>|[<>&;a-z0-9 :./%-]{0,12}|\r\n){0,12}") {
        let base = url("http://h/iso/");
        for e in entries(&base, &base, &html) {
            prop_assert!(safe_relative_path(&e.path).is_ok());
        }
    }

    #[test]
    fn arbitrary_text_never_panics(html in "\\PC{0,200}") {
        let base = url("http://h/iso/");
        let _ = entries(&base, &base, &html);
    }
}

/// A name with a `:` before any `/`: Apache's mod_autoindex writes `./a:b.iso`
/// (`ap_os_escape_path(scratch, t, 0)` prefixes `./`), nginx since 1.1.6 `a%3Ab.iso`
/// (`NGX_ESCAPE_URI_COMPONENT`). Both are the file `a:b.iso`; a bare `a:b.iso` is a URL with
/// scheme `a` and no entry.
#[test]
fn names_with_a_colon() {
    let apr57 = minute(datetime!(2024-04-24 10:57 UTC));
    let dotted =
        "<pre><a href=\"../\">../</a>\r\n<a href=\"./a:b.iso\">a:b.iso</a>   24-Apr-2024 10:57   123\r\n</pre>";
    let encoded = "<pre><a href=\"a%3Ab.iso\">a:b.iso</a>   24-Apr-2024 10:57   123\r\n</pre>";
    let apache = "<tr><td><a href=\"./a:b.iso\">a:b.iso</a></td><td align=\"right\">2024-04-24 10:57  </td>\
                  <td align=\"right\">123 </td></tr>";
    let want = vec![("a:b.iso".to_owned(), false, ListedSize::Exact(123), apr57)];
    for html in [dotted, encoded, apache] {
        assert_eq!(summary("http://h/iso/", html), want, "{html}");
    }
    let page = url("http://h/iso/sub/");
    let got = entries(&page, &url("http://h/iso/"), dotted);
    assert_eq!(
        got.iter().map(|e| (e.path.as_str(), e.url.as_str())).collect::<Vec<_>>(),
        vec![("sub/a:b.iso", "http://h/iso/sub/a:b.iso")]
    );
    assert!(summary("http://h/iso/", "<a href=\"a:b.iso\">a:b.iso</a> 24-Apr-2024 10:57 1").is_empty());
}

/// nginx with `autoindex_exact_size off`: `%6i%c` in K (above 9999 bytes), M or G, rounded to
/// the nearest unit, and ` %6i` exact bytes below; directories `      -`.
#[test]
fn nginx_without_exact_sizes() {
    let html = "<pre><a href=\"../\">../</a>\r\n\
<a href=\"old/\">old/</a>                                               01-Jan-2024 00:00       -\r\n\
<a href=\"small\">small</a>                                              24-Apr-2024 10:57    9999\r\n\
<a href=\"k\">k</a>                                                  24-Apr-2024 10:57     10K\r\n\
<a href=\"big.iso\">big.iso</a>                                            24-Apr-2024 10:57   1266M\r\n\
<a href=\"huge.iso\">huge.iso</a>                                           24-Apr-2024 10:57      2G\r\n\
</pre>";
    let sizes: Vec<(String, ListedSize)> =
        summary("http://h/iso/", html).into_iter().map(|(p, _, size, _)| (p, size)).collect();
    assert_eq!(
        sizes,
        vec![
            ("old".to_owned(), ListedSize::Unknown),
            ("small".to_owned(), ListedSize::Exact(9999)),
            ("k".to_owned(), ListedSize::Approx { bytes: 10 << 10, tolerance: 1 << 10 }),
            ("big.iso".to_owned(), ListedSize::Approx { bytes: 1266 << 20, tolerance: 1 << 20 }),
            ("huge.iso".to_owned(), ListedSize::Approx { bytes: 2 << 30, tolerance: 1 << 30 }),
        ]
    );
    // What nginx rounds to a unit is within the tolerance: 1327753216 bytes shows as 1266M.
    assert!(sizes[3].1.admits(1_327_753_216));
}
