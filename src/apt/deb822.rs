//! deb822 stanzas — the syntax shared by Release, Packages and pdiff `Index` files — on top of
//! the `deb822-fast` crate's borrowed parser, which fits: it is zero-copy and returns a
//! multi-line value (Release's `SHA256:` list) as its lines.
//!
//! This module adds what the index parsers need around it: stanza numbers and names for error
//! messages, trimmed values (the crate keeps trailing blanks and `\r`), and rejection of a field
//! that appears twice in one stanza — an index is attacker-controlled input until verified, and
//! one field must not carry two meanings to two readers.

use super::ParseError;
use deb822_fast::borrowed::{BorrowedParagraph, BorrowedParagraphIter};

/// One stanza (paragraph) of a deb822 document.
pub struct Stanza<'a> {
    what: &'static str,
    number: usize,
    name_field: Option<&'static str>,
    para: BorrowedParagraph<'a>,
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

    fn lines_raw(&self, field: &str) -> Result<Option<&[&'a str]>, ParseError> {
        let count = self.para.iter().filter(|f| f.name().eq_ignore_ascii_case(field)).count();
        if count > 1 {
            return Err(self.bad(field, format!("field appears {count} times")));
        }
        Ok(self.para.get(field))
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
    fn duplicate_fields_are_rejected() {
        let s = first("Package: a\nSize: 1\nsize: 2\n");
        let err = s.single("Size").unwrap_err();
        assert!(err.to_string().contains("appears 2 times"), "{err}");
        assert!(err.to_string().contains("Test stanza 1 (Package: a)"), "{err}");
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
