//! deb822 stanzas — the syntax shared by Release, Packages and pdiff `Index` files — on top of
//! the `deb822-fast` crate's borrowed parser, which fits: it is zero-copy and returns a
//! multi-line value (Release's `SHA256:` list) as its lines.
//!
//! This module adds what the index parsers need around it: stanza numbers and names for error
//! messages, trimmed values (the crate keeps trailing blanks and `\r`), and apt's reading of a
//! field that appears twice in one stanza (the last one counts). Parsers that take text apt also
//! reads go through [`normalize_newlines`] first: apt's parser accepts CRLF line ends.

use super::ParseError;
use deb822_fast::borrowed::{BorrowedParagraph, BorrowedParagraphIter};

/// One stanza (paragraph) of a deb822 document.
pub struct Stanza<'a> {
    what: &'static str,
    number: usize,
    name_field: Option<&'static str>,
    para: BorrowedParagraph<'a>,
}

/// `text` with CRLF line ends made LF, borrowed when it has none. apt's `pkgTagSection::Scan`
/// steps over the `\r` of CRLF line ends (a `\r\n\r\n` ends a stanza, a trailing `\r` is
/// trimmed from values), so a CRLF index is one it reads.
pub fn normalize_newlines(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\r') {
        std::borrow::Cow::Owned(text.replace("\r\n", "\n"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Iterate over the stanzas of `text`. `what` names the document in errors ("Release");
/// `name_field` (e.g. `Package`) is the field whose value identifies a stanza in errors.
pub fn stanzas<'a>(
    text: &'a str,
    what: &'static str,
    name_field: Option<&'static str>,
) -> impl Iterator<Item = Result<Stanza<'a>, ParseError>> + 'a {
    BorrowedParagraphIter::new(text).enumerate().map(move |(i, para)| match para {
        Ok(para) => Ok(Stanza { what, number: i + 1, name_field, para }),
        Err(e) => Err(ParseError::Syntax { stanza: format!("{what} stanza {}", i + 1), detail: e.to_string() }),
    })
}

impl<'a> Stanza<'a> {
    /// "Packages stanza 12 (Package: hello)" — where an error happened, for messages.
    pub fn describe(&self) -> String {
        let name = self.name_field.and_then(|f| Some((f, self.para.get(f)?.first()?.trim())));
        match name {
            Some((field, value)) => {
                format!("{} stanza {} ({field}: {value})", self.what, self.number)
            }
            None => format!("{} stanza {}", self.what, self.number),
        }
    }

    /// The trimmed value of a single-line field; `None` when absent. A repeated or multi-line
    /// field is an error.
    pub fn single(&self, field: &str) -> Result<Option<&'a str>, ParseError> {
        match self.lines_raw(field)? {
            None => Ok(None),
            Some([line]) => Ok(Some(line.trim())),
            Some(_) => Err(self.bad(field, "expected a single-line value")),
        }
    }

    /// Like [`Stanza::single`] but absence is an error.
    pub fn required(&self, field: &'static str) -> Result<&'a str, ParseError> {
        self.single(field)?.ok_or_else(|| ParseError::MissingField { stanza: self.describe(), field })
    }

    /// The non-empty trimmed lines of a (usually multi-line) field, the first line included;
    /// `None` when absent. A repeated field is an error.
    pub fn lines(&self, field: &str) -> Result<Option<Vec<&'a str>>, ParseError> {
        Ok(self.lines_raw(field)?.map(|lines| lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect()))
    }

    /// An error about `field` of this stanza.
    pub fn bad(&self, field: &str, detail: impl Into<String>) -> ParseError {
        ParseError::BadField { stanza: self.describe(), field: field.to_owned(), detail: detail.into() }
    }

    /// The last occurrence of `field` (names compare case-insensitively): apt's tag parser keeps
    /// every occurrence and its lookup finds the one added last (pkgTagSection::Scan puts each
    /// new tag at the head of its hash bucket), so a repeated field means its last value.
    fn lines_raw(&self, field: &str) -> Result<Option<&[&'a str]>, ParseError> {
        Ok(self.para.iter().filter(|f| f.name().eq_ignore_ascii_case(field)).last().map(|f| f.lines()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(text: &str) -> Stanza<'_> {
        match stanzas(text, "Test", Some("Package")).next() {
            Some(Ok(s)) => s,
            other => panic!("no stanza in {text:?}: {:?}", other.map(|r| r.err())),
        }
    }

    #[test]
    fn values_are_trimmed_and_lines_split() {
        let s = first("Package: a  \r\nList:\n x 1\n \t\n y 2 \n");
        assert_eq!(s.single("package").unwrap(), Some("a"));
        assert_eq!(s.lines("List").unwrap(), Some(vec!["x 1", "y 2"]));
        assert_eq!(s.single("Absent").unwrap(), None);
        assert!(s.single("List").is_err(), "multi-line value is not single");
    }

    #[test]
    fn a_repeated_field_means_its_last_value_as_for_apt() {
        let s = first("Package: a\nSize: 1\nsize: 2\n");
        assert_eq!(s.single("Size").unwrap(), Some("2"));
        assert_eq!(s.describe(), "Test stanza 1 (Package: a)");
    }

    #[test]
    fn crlf_text_reads_as_lf() {
        let text = normalize_newlines("Package: a\r\nSize: 1\r\n\r\nPackage: b\r\n");
        let names: Vec<String> =
            stanzas(&text, "Test", None).map(|s| s.unwrap().single("Package").unwrap().unwrap().to_owned()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(matches!(normalize_newlines("x\n"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn stanzas_are_numbered_and_syntax_errors_located() {
        let text = "A: 1\n\nB: 2\n\nno colon here\n";
        let results: Vec<_> = stanzas(text, "Doc", None).collect();
        assert_eq!(results.len(), 3);
        assert_eq!(results[1].as_ref().map(|s| s.describe()).ok(), Some("Doc stanza 2".into()));
        match &results[2] {
            Err(ParseError::Syntax { stanza, .. }) => assert_eq!(stanza, "Doc stanza 3"),
            other => panic!("expected syntax error, got {:?}", other.as_ref().err()),
        }
    }

    #[test]
    fn required_reports_missing_field() {
        let err = first("Package: a\n").required("Version").unwrap_err();
        assert_eq!(err, ParseError::MissingField { stanza: "Test stanza 1 (Package: a)".into(), field: "Version" });
    }
}
