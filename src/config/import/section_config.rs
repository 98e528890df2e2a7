//! The syntax of Proxmox's section-config files (proxmox-section-config, in which
//! proxmox-offline-mirror keeps its config): `type: id` headers at column 0, each followed by
//! indented `key value` property lines; `#` comments and blank lines between. Values are read as
//! proxmox-schema reads them (booleans, lists). What the sections mean is [`super`]'s business.

use super::ImportError;

/// One `type: id` section with its `key value` lines.
#[derive(Debug)]
pub(super) struct Section {
    pub(super) kind: String,
    pub(super) id: String,
    pub(super) line: usize,
    pub(super) props: Vec<Prop>,
}

#[derive(Debug)]
pub(super) struct Prop {
    pub(super) key: String,
    pub(super) value: String,
    pub(super) line: usize,
}

/// Splits section-config text into sections. Comments (`#`) and blank lines are skipped; a
/// property line is indented, a header is `type: id` at column 0.
pub(super) fn sections(text: &str) -> Result<Vec<Section>, ImportError> {
    let mut out: Vec<Section> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            let section = out.last_mut().ok_or_else(|| ImportError::Syntax {
                line,
                message: "property line before the first `type: id` section header".into(),
            })?;
            let (key, value) = trimmed.split_once(char::is_whitespace).unwrap_or((trimmed, ""));
            section.props.push(Prop { key: key.to_owned(), value: value.trim().to_owned(), line });
            continue;
        }
        let (kind, id) = trimmed.split_once(':').ok_or_else(|| ImportError::Syntax {
            line,
            message: format!("expected a `type: id` section header, found {trimmed:?}"),
        })?;
        let (kind, id) = (kind.trim(), id.trim());
        if kind.is_empty() || id.is_empty() || kind.contains(char::is_whitespace) {
            return Err(ImportError::Syntax { line, message: format!("malformed section header {trimmed:?}") });
        }
        out.push(Section { kind: kind.to_owned(), id: id.to_owned(), line, props: Vec::new() });
    }
    Ok(out)
}

/// proxmox-schema booleans: `1/0`, `true/false`, `yes/no`, `on/off` (any case).
pub(super) fn boolean(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

pub(super) fn list(value: &str) -> impl Iterator<Item = String> + '_ {
    value.split([',', ' ', '\t']).filter(|v| !v.is_empty()).map(str::to_owned)
}
