//! module-graph: ARCHITECTURE.md's rules checked on the source, not only stated (issue 12). Std
//! only, so plain `rustc` builds it too. Usage: `module-graph [--graph] [SRC_DIR]` (default `src`).
//!
//! A top-level module is `src/<m>.rs` or `src/<m>/…`; A depends on B when a non-test file of A
//! names `crate::B` (or reaches it through `super::`) in a `use` (groups, multi-line) or a path
//! expression. Test code: files named `tests.rs` or `*_tests.rs`, items under `#[cfg(test)]`.
//! `--graph` first prints the graph (`a -> b, c`) and its cycles with one reference per edge.
//! Cycles among the files of one module are warnings. Each violation of a rule is printed as
//! `file:line: rule: detail` (exit 1; without any: exit 0, `architecture: ok (N files)`):
//! - `module-cycle`: no cycle among top-level modules: each can be read, tested and changed
//!   knowing only the modules below it;
//! - `dry-run`: `dry_run` / `dry-run` only under `src/cli/` (code, strings and tests; not
//!   comments): a dry run is the composition root's choice of steps, not a flag in the engine;
//! - `file-length`: no file over 500 lines; `fn-length`: no non-test fn over 80 lines, `fn` line
//!   to closing brace (methods too; a closure is part of its function);
//! - `unsafe`: every `unsafe {` / `fn` / `impl` / `extern` has a `// SAFETY:` comment on its line
//!   or within the 3 lines above (or in the comment block that ends there);
//! - `crate-use` (non-test code): only `catalog` uses rusqlite, only `fetch*` reqwest, only `fuse`
//!   fuser; `tree` none of them nor tokio; `apt` (pure parsers) no `std::fs`, tokio or reqwest.
//!
//! Lexing: one hand-written pass blanks comments, string literals (raw too) and char literals,
//! keeping newlines. Names are not resolved: a dependency only a glob import or re-export creates
//! is not seen, nor one in a non-test inline `mod x { … }`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

const USAGE: &str = "usage: module-graph [--graph] [SRC_DIR]   (default: src)";
const MAX_FILE_LINES: usize = 500;
const MAX_FN_LINES: usize = 80;
const SAFETY_LINES_ABOVE: usize = 3;
/// (crate, the only top-level module that may use it; a trailing `*` makes it a prefix).
const ONLY_IN: &[(&str, &str)] = &[("rusqlite", "catalog"), ("reqwest", "fetch*"), ("fuser", "fuse")];
/// (top-level module, what else its non-test code must not use; `std::fs` matches as a path
/// prefix, `use std::{fs, io}` too): `tree` knows no FUSE/SQL/HTTP (ONLY_IN) nor tokio.
const NEVER_IN: &[(&str, &[&str])] = &[("tree", &["tokio"]), ("apt", &["std::fs", "tokio"])];

/// An identifier, `::`, or one punctuation character, at its byte offset.
struct Tok {
    s: String,
    pos: usize,
}

/// A path as written (`crate::{a, b::c}` gives two), at the offset of its first segment.
type PathRef = (Vec<String>, usize);
/// (file, line, rule, detail): sorts by file, then line.
type Violation = (String, usize, &'static str, String);

/// Where an edge comes from: (file, line of its first reference, how many references).
struct Ref(String, usize, usize);
type Graph = BTreeMap<String, BTreeMap<String, Ref>>;

/// One source file, lexed.
struct Source {
    shown: String,
    /// `sync::driver` (a `mod.rs` is its directory's module; lib.rs and main.rs have none).
    module: Vec<String>,
    lines: Vec<String>,
    line_starts: Vec<usize>,
    /// The text with comments blanked and string literals kept.
    code_str: Vec<u8>,
    /// The tokens of the text with comments and literals blanked too.
    toks: Vec<Tok>,
    paths: Vec<PathRef>,
    test_file: bool,
    test_ranges: Vec<(usize, usize)>,
}

impl Source {
    fn line(&self, pos: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= pos)
    }
    fn is_test(&self, pos: usize) -> bool {
        self.test_file || self.test_ranges.iter().any(|&(a, b)| a <= pos && pos < b)
    }
    fn top(&self) -> Option<&str> {
        self.module.first().map(String::as_str)
    }
    fn violation(&self, out: &mut Vec<Violation>, line: usize, rule: &'static str, detail: String) {
        out.push((self.shown.clone(), line, rule, detail));
    }
}

/// A comment or literal: (start of what to blank, its end, end, is a comment).
type Lit = (usize, usize, usize, bool);

fn ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

fn is_ident(s: &str) -> bool {
    s.bytes().next().is_some_and(|b| ident_byte(b) && !b.is_ascii_digit())
}

/// Returns (code, code_str): comments blanked in both, the insides of literals in `code` only.
fn blank(s: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (mut code, mut code_str) = (s.to_vec(), s.to_vec());
    let spaces = |v: &mut [u8]| v.iter_mut().filter(|c| **c != b'\n').for_each(|c| *c = b' ');
    let mut i = 0;
    while i < s.len() {
        let Some((a, b, end, comment)) = literal_at(s, i) else {
            i += 1;
            continue;
        };
        spaces(&mut code[a..b]);
        spaces(&mut code_str[a..if comment { b } else { a }]);
        i = end;
    }
    (code, code_str)
}

/// The comment or literal that starts at `i`, if one does.
fn literal_at(s: &[u8], i: usize) -> Option<Lit> {
    let at = |k: usize| s.get(k).copied().unwrap_or(0);
    let token_start = |k: usize| k == 0 || !ident_byte(s[k - 1]);
    let comment = |end: usize| Some((i, end, end, true));
    match s[i] {
        b'/' if at(i + 1) == b'/' => comment(find(s, i, b"\n").unwrap_or(s.len())),
        b'/' if at(i + 1) == b'*' => comment(block_comment_end(s, i)),
        b'"' => Some(string_at(s, i + 1)),
        // r"…", r#"…"#, br"…", cr"…" (but not the raw identifier r#type).
        b'r' if token_start(i) || (i > 0 && matches!(s[i - 1], b'b' | b'c') && token_start(i - 1)) => {
            let hashes = s[i + 1..].iter().take_while(|&&c| c == b'#').count();
            let open = i + 2 + hashes;
            if at(open - 1) != b'"' {
                return None;
            }
            let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
            let end = find(s, open, &close).unwrap_or(s.len());
            Some((open, end, (end + close.len()).min(s.len()), false))
        }
        b'\'' if at(i + 1) == b'\\' => {
            let end = find(s, i + 3, b"'").map_or(s.len(), |e| e + 1);
            Some((i + 1, end - 1, end, false))
        }
        b'\'' => {
            // 'x' is a char literal; 'a without a closing quote after one char, a lifetime or label.
            let width = (at(i + 1).leading_ones() as usize).max(1);
            (at(i + 1 + width) == b'\'').then_some((i + 1, i + 1 + width, i + 2 + width, false))
        }
        _ => None,
    }
}

fn find(s: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    s.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// The offset just past the (possibly nested) block comment that opens at `k`.
fn block_comment_end(s: &[u8], mut k: usize) -> usize {
    let mut depth = 0;
    while k + 1 < s.len() {
        let (open, close) = (&s[k..k + 2] == b"/*", &s[k..k + 2] == b"*/");
        depth += i32::from(open) - i32::from(close);
        k += if open || close { 2 } else { 1 };
        if depth == 0 {
            return k;
        }
    }
    s.len()
}

/// The string literal whose content starts at `k`.
fn string_at(s: &[u8], start: usize) -> Lit {
    let mut k = start;
    while k < s.len() && s[k] != b'"' {
        k += if s[k] == b'\\' { 2 } else { 1 };
    }
    (start, k.min(s.len()), (k + 1).min(s.len()), false)
}

fn tokenize(code: &[u8]) -> Vec<Tok> {
    let (mut toks, mut i) = (Vec::new(), 0);
    while i < code.len() {
        let start = i;
        if ident_byte(code[i]) {
            i += code[i..].iter().take_while(|&&b| ident_byte(b)).count();
        } else {
            i += if code[i..].starts_with(b"::") { 2 } else { 1 };
            if code[start].is_ascii_whitespace() {
                continue;
            }
        }
        toks.push(Tok { s: String::from_utf8_lossy(&code[start..i]).into_owned(), pos: start });
    }
    toks
}

/// Every path in the tokens (`a::b…`), with use-groups expanded.
fn paths(toks: &[Tok]) -> Vec<PathRef> {
    let (mut out, mut i) = (Vec::new(), 0);
    while i < toks.len() {
        let next_is_sep = toks.get(i + 1).is_some_and(|t| t.s == "::");
        if is_ident(&toks[i].s) && next_is_sep && (i == 0 || toks[i - 1].s != "::") {
            use_tree(toks, &mut i, Vec::new(), &mut out);
        } else {
            i += 1;
        }
    }
    out
}

/// Reads the use-tree at `*i` (`a::b`, `a::{b, c::{d, e}}`, `a::*`) and appends its leaves.
fn use_tree(toks: &[Tok], i: &mut usize, mut prefix: Vec<String>, out: &mut Vec<PathRef>) {
    let pos = toks.get(*i).map_or(0, |t| t.pos);
    let tok_is = |k: usize, s: &str| toks.get(k).is_some_and(|t| t.s == s);
    while let Some(t) = toks.get(*i) {
        if is_ident(&t.s) {
            prefix.push(t.s.clone());
            *i += 1;
            if tok_is(*i, "::") {
                *i += 1;
                continue;
            }
        } else if t.s == "{" {
            *i += 1;
            while toks.get(*i).is_some_and(|t| t.s != "}") {
                use_tree(toks, i, prefix.clone(), out);
                if !tok_is(*i, ",") {
                    break;
                }
                *i += 1;
            }
            *i += usize::from(tok_is(*i, "}"));
            return;
        } else if t.s == "*" {
            *i += 1;
        }
        break;
    }
    out.push((prefix, pos));
}

/// The body of the item whose header starts at token `i`: Ok((its `{`, the matching `}`)), or
/// Err(the `;` that ends it first, outside parentheses and brackets: an item without a body).
fn item_body(toks: &[Tok], i: usize) -> Result<(usize, usize), usize> {
    let (mut parens, mut braces, mut open) = (0, 0, 0);
    for (k, t) in toks.iter().enumerate().skip(i) {
        match t.s.as_str() {
            "(" | "[" => parens += 1,
            ")" | "]" => parens -= 1,
            ";" if parens == 0 && braces == 0 => return Err(k),
            "{" if parens == 0 && braces == 0 => (open, braces) = (k, 1),
            "{" => braces += 1,
            "}" if braces == 1 => return Ok((open, k)),
            "}" => braces -= 1,
            _ => {}
        }
    }
    Err(toks.len().saturating_sub(1))
}

/// The offset ranges of the items under `#[cfg(test)]`.
fn test_ranges(toks: &[Tok]) -> Vec<(usize, usize)> {
    const ATTR: [&str; 7] = ["#", "[", "cfg", "(", "test", ")", "]"];
    let is_attr = |i: usize| ATTR.iter().enumerate().all(|(k, s)| toks.get(i + k).is_some_and(|t| t.s == *s));
    let end_of = |i: usize| toks[item_body(toks, i).map_or_else(|semi| semi, |(_, close)| close)].pos + 1;
    (0..toks.len()).filter(|&i| is_attr(i)).map(|i| (toks[i].pos, end_of(i + ATTR.len()))).collect()
}

/// Lexes every `.rs` file under `dir` into `out`.
fn load(root: &Path, dir: &Path, out: &mut Vec<Source>) -> std::io::Result<()> {
    let mut entries = std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<Vec<_>, _>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            load(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            out.push(lex(&rel, path.display().to_string(), &std::fs::read_to_string(&path)?));
        }
    }
    Ok(())
}

fn lex(rel: &str, shown: String, text: &str) -> Source {
    let (code, code_str) = blank(text.as_bytes());
    let toks = tokenize(&code);
    let mut module: Vec<String> = rel.trim_end_matches(".rs").split('/').map(String::from).collect();
    if module.last().is_some_and(|m| m == "mod") || matches!(rel, "lib.rs" | "main.rs") {
        module.pop();
    }
    let name = rel.rsplit('/').next().unwrap_or(rel);
    Source {
        shown,
        module,
        lines: text.lines().map(String::from).collect(),
        line_starts: std::iter::once(0).chain(text.match_indices('\n').map(|(k, _)| k + 1)).collect(),
        code_str,
        paths: paths(&toks),
        test_file: name == "tests.rs" || name.ends_with("_tests.rs"),
        test_ranges: test_ranges(&toks),
        toks,
    }
}

/// The crate-absolute segments of a path written in `module`, if it names this crate.
fn resolve(module: &[String], path: &[String]) -> Option<Vec<String>> {
    match path.first()?.as_str() {
        "crate" => Some(path[1..].to_vec()),
        "super" => {
            let ups = path.iter().take_while(|s| *s == "super").count();
            Some([&module[..module.len().checked_sub(ups)?], &path[ups..]].concat())
        }
        _ => None,
    }
}

fn add_edge(g: &mut Graph, from: &str, to: &str, file: &str, line: usize) {
    let edge = g.entry(from.to_string()).or_default().entry(to.to_string());
    edge.and_modify(|r| r.2 += 1).or_insert(Ref(file.to_string(), line, 1));
}

/// The graph of top-level modules, and the graph among the files of each (`cli::ops::status ->
/// cli::human`) without edges between a file and its own ancestors or descendants (a parent
/// re-exporting a child, a child using its parent's items: the usual shape, not a tangle).
fn graphs(sources: &[Source], tops: &BTreeSet<String>) -> (Graph, Graph) {
    let files: BTreeSet<&[String]> = sources.iter().filter(|s| !s.test_file).map(|s| s.module.as_slice()).collect();
    let mut modules: Graph = tops.iter().map(|t| (t.clone(), BTreeMap::new())).collect();
    let mut inner = Graph::new();
    for src in sources.iter().filter(|s| !s.test_file && !s.module.is_empty()) {
        for (path, pos) in src.paths.iter().filter(|(_, pos)| !src.is_test(*pos)) {
            let Some(abs) = resolve(&src.module, path) else { continue };
            let Some(target) = abs.first().filter(|t| tops.contains(*t)) else { continue };
            let line = src.line(*pos);
            if *target != src.module[0] {
                add_edge(&mut modules, &src.module[0], target, &src.shown, line);
                continue;
            }
            let Some(dest) = (1..=abs.len()).rev().map(|n| &abs[..n]).find(|p| files.contains(p)) else { continue };
            if !dest.starts_with(&src.module) && !src.module.starts_with(dest) {
                add_edge(&mut inner, &src.module.join("::"), &dest.join("::"), &src.shown, line);
            }
        }
    }
    (modules, inner)
}

/// The nodes reachable from `from` through at least one edge.
fn reachable(g: &Graph, from: &str) -> BTreeSet<String> {
    let (mut seen, mut todo) = (BTreeSet::new(), vec![from.to_string()]);
    while let Some(n) = todo.pop() {
        for next in g.get(&n).into_iter().flat_map(|e| e.keys()) {
            if seen.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    seen
}

/// The edges inside cycles — strongly connected components of more than one node, found from
/// each node's reachability (the graphs are small) — as (cycle, edge, its first reference).
fn cycle_edges(g: &Graph) -> Vec<(String, String, &Ref)> {
    let reach: BTreeMap<&String, BTreeSet<String>> = g.keys().map(|n| (n, reachable(g, n))).collect();
    let (mut done, mut out) = (BTreeSet::new(), Vec::new());
    for (n, from_n) in reach.iter().filter(|(n, from_n)| from_n.contains(**n)) {
        let comp: Vec<&String> = from_n.iter().filter(|m| reach.get(m).is_some_and(|r| r.contains(*n))).collect();
        let cycle = comp.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
        for (from, edges) in g.iter().filter(|(from, _)| comp.contains(from) && done.insert(*from)) {
            out.extend(
                edges
                    .iter()
                    .filter(|(to, _)| comp.contains(to))
                    .map(|(to, r)| (cycle.clone(), format!("{from} -> {to}"), r)),
            );
        }
    }
    out
}

fn print_graph(g: &Graph, module_cycles: &[(String, String, &Ref)]) {
    println!("== module graph (A -> B: a non-test file of A names crate::B)");
    for (from, edges) in g {
        println!("{from} -> {}", edges.keys().cloned().collect::<Vec<_>>().join(", "));
    }
    let cycles: BTreeSet<&String> = module_cycles.iter().map(|c| &c.0).collect();
    println!("\n== cycles among top-level modules: {}", cycles.len());
    for (k, (cycle, edge, r)) in module_cycles.iter().enumerate() {
        if k == 0 || module_cycles[k - 1].0 != *cycle {
            println!("cycle: {cycle}");
        }
        println!("  {edge}: {}:{} (references: {})", r.0, r.1, r.2);
    }
    println!("\n== checks");
}

fn check_dry_run(src: &Source, out: &mut Vec<Violation>) {
    for (n, line) in src.code_str.split(|&b| b == b'\n').enumerate().filter(|_| src.top() != Some("cli")) {
        let line = String::from_utf8_lossy(line).to_lowercase();
        if line.contains("dry_run") || line.contains("dry-run") {
            let detail = "`dry_run` outside src/cli/ (a dry run is cli's choice of steps, not an engine flag)";
            src.violation(out, n + 1, "dry-run", detail.to_string());
        }
    }
}

fn check_lengths(src: &Source, out: &mut Vec<Violation>) {
    if src.lines.len() > MAX_FILE_LINES {
        let detail = format!("{} lines (max {MAX_FILE_LINES})", src.lines.len());
        src.violation(out, src.lines.len(), "file-length", detail);
    }
    let t = &src.toks;
    for i in 0..t.len() {
        let Some(name) = t.get(i + 1).filter(|n| t[i].s == "fn" && is_ident(&n.s) && !src.is_test(t[i].pos)) else {
            continue;
        };
        let Ok((_, close)) = item_body(t, i + 2) else { continue };
        let (first, last) = (src.line(t[i].pos), src.line(t[close].pos));
        if last - first + 1 > MAX_FN_LINES {
            let detail = format!("fn {} is {} lines (max {MAX_FN_LINES})", name.s, last - first + 1);
            src.violation(out, first, "fn-length", detail);
        }
    }
}

fn check_unsafe(src: &Source, out: &mut Vec<Violation>) {
    let has_safety = |l: &String| l.find("//").is_some_and(|c| l[c..].contains("SAFETY:"));
    for (i, t) in src.toks.iter().enumerate().filter(|(_, t)| t.s == "unsafe") {
        let next = src.toks.get(i + 1).map_or("", |n| n.s.as_str());
        let line = src.line(t.pos);
        // The window reaches up through a comment block that ends inside it (a long SAFETY:).
        let mut start = line.saturating_sub(SAFETY_LINES_ABOVE + 1);
        while start > 0 && src.lines[start - 1].trim_start().starts_with("//") {
            start -= 1;
        }
        let above = &src.lines[start..line];
        if matches!(next, "{" | "fn" | "impl" | "extern") && !above.iter().any(has_safety) {
            let detail = format!("`unsafe {next}` without `// SAFETY:` on its line or the {SAFETY_LINES_ABOVE} above");
            src.violation(out, line, "unsafe", detail);
        }
    }
}

fn check_crates(src: &Source, out: &mut Vec<Violation>) {
    let Some(top) = src.top() else { return };
    let only = ONLY_IN.iter().filter(|(_, m)| m.strip_suffix('*').map_or(top != *m, |prefix| !top.starts_with(prefix)));
    let only = only.map(|(name, m)| (*name, format!("only src/{} uses {name}", m.trim_end_matches('*'))));
    let never = NEVER_IN.iter().filter(|(m, _)| *m == top).flat_map(|(_, names)| names.iter());
    for (name, why) in only.chain(never.map(|name| (*name, format!("src/{top}/ must not use {name}")))) {
        let found: Vec<usize> = match name.split_once("::") {
            Some((a, b)) => {
                src.paths.iter().filter(|(p, _)| p.len() > 1 && p[0] == a && p[1] == b).map(|p| p.1).collect()
            }
            None => src.toks.iter().filter(|t| t.s == name).map(|t| t.pos).collect(),
        };
        let found: Vec<usize> = found.into_iter().filter(|&pos| !src.is_test(pos)).collect();
        if let Some(&pos) = found.first() {
            src.violation(out, src.line(pos), "crate-use", format!("{why} ({} mentions in this file)", found.len()));
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let graph = args.iter().any(|a| a == "--graph");
    if args.iter().any(|a| a.starts_with('-') && a != "--graph") {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let root = Path::new(args.iter().find(|a| !a.starts_with('-')).map_or("src", String::as_str));
    let mut sources = Vec::new();
    if let Err(e) = load(root, root, &mut sources) {
        eprintln!("module-graph: {}: {e}", root.display());
        return ExitCode::from(2);
    }
    let tops: BTreeSet<String> = sources.iter().filter_map(|s| s.top().map(String::from)).collect();
    let (modules, inner) = graphs(&sources, &tops);
    let module_cycles = cycle_edges(&modules);
    if graph {
        print_graph(&modules, &module_cycles);
    }
    for (cycle, edge, Ref(file, line, n)) in cycle_edges(&inner) {
        println!("{file}:{line}: warning: submodule-cycle: {edge} (references: {n}; cycle: {cycle})");
    }
    let cycle_violation = |(cycle, edge, Ref(file, line, n)): &(String, String, &Ref)| {
        (file.clone(), *line, "module-cycle", format!("{edge} (references: {n}; cycle: {cycle})"))
    };
    let mut found: Vec<Violation> = module_cycles.iter().map(cycle_violation).collect();
    for src in &sources {
        check_dry_run(src, &mut found);
        check_lengths(src, &mut found);
        check_unsafe(src, &mut found);
        check_crates(src, &mut found);
    }
    report(found, sources.len())
}

fn report(mut found: Vec<Violation>, files: usize) -> ExitCode {
    if found.is_empty() {
        println!("architecture: ok ({files} files)");
        return ExitCode::SUCCESS;
    }
    found.sort();
    let mut per_rule: BTreeMap<&str, usize> = BTreeMap::new();
    for (file, line, rule, detail) in &found {
        println!("{file}:{line}: {rule}: {detail}");
        *per_rule.entry(rule).or_default() += 1;
    }
    let counts: Vec<String> = per_rule.iter().map(|(rule, n)| format!("{rule} {n}")).collect();
    println!("architecture: {} violations ({}) in {files} files", found.len(), counts.join(", "));
    ExitCode::FAILURE
}
