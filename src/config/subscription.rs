//! `[[subscription]]`: Proxmox subscription keys, which the enterprise repositories
//! (`https://enterprise.proxmox.com/debian/{pve,pbs,pmg,ceph-*}`) require. A `[[mirror]]` or
//! `[[tree]]` with `use-subscription = "pve"` sends the first `[[subscription]]` whose key is a
//! pve key, as proxmox-offline-mirror does: HTTP basic auth, user = key, password = server id.
//!
//! Product rule: a key names its product in its first three letters, in one of the shapes
//! Proxmox issues (and proxmox-offline-mirror's schema accepts):
//!
//! ```text
//! pve<sockets><level>-<id>   pve4b-1234567890   Proxmox VE (sockets: digits, level: one letter)
//! pbs<level>-<id>            pbsc-1234567890    Proxmox Backup Server
//! pmg<level>-<id>            pmgp-1234567890    Proxmox Mail Gateway
//! pom-<id>                   pom-1234567890     Proxmox Offline Mirror
//! ```
//!
//! `<id>` is letters and digits. Ceph's enterprise repositories take a pve key.
//!
//! Keys are secrets: [`SubscriptionKey`] prints masked (`pve4b-12…(masked)`) through `Debug`
//! and `Display`, and no error message quotes a key.

use std::fmt;
use url::Url;

/// Characters of the key's id shown by [`SubscriptionKey::masked`]: enough to tell two keys
/// apart in a message, far too few to guess the rest.
const SHOWN_ID_CHARS: usize = 2;
/// Length of a Proxmox server id (hex digits; proxmox-offline-mirror's schema).
const SERVER_ID_LEN: usize = 32;

/// What a subscription key is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Product {
    Pve,
    Pbs,
    Pmg,
    Pom,
}

impl Product {
    pub const ALL: [Product; 4] = [Product::Pve, Product::Pbs, Product::Pmg, Product::Pom];

    /// As written in `use-subscription` and at the start of a key.
    pub fn name(self) -> &'static str {
        match self {
            Product::Pve => "pve",
            Product::Pbs => "pbs",
            Product::Pmg => "pmg",
            Product::Pom => "pom",
        }
    }

    /// A `use-subscription` value.
    pub fn parse(name: &str) -> Result<Product, String> {
        Product::ALL.into_iter().find(|p| p.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Product::ALL.iter().map(|p| p.name()).collect();
            format!("{name:?} is not a subscription product (one of {})", names.join(", "))
        })
    }

    /// The product of a subscription key (see the module doc for the shapes). The reason never
    /// quotes the key.
    pub fn of_key(key: &str) -> Result<Product, String> {
        if key.contains("(masked)") {
            return Err("is masked (as `config show` prints it); write the whole key".into());
        }
        let shape = "is not a Proxmox subscription key (pve<sockets><level>-…, pbs<level>-…, pmg<level>-… or pom-…)";
        let (prefix, id) = key.split_once('-').ok_or_else(|| shape.to_owned())?;
        let product = match prefix.get(..3) {
            Some("pom") if prefix.len() == 3 => Product::Pom,
            Some("pve") if is_sockets_and_level(&prefix[3..]) => Product::Pve,
            Some("pbs") if is_level(&prefix[3..]) => Product::Pbs,
            Some("pmg") if is_level(&prefix[3..]) => Product::Pmg,
            _ => return Err(shape.into()),
        };
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("{shape}: the part after '-' must be letters and digits"));
        }
        Ok(product)
    }

    /// The subscription an upstream URL most likely needs, from its path (`…/debian/pbs` → pbs;
    /// Ceph's enterprise repositories take a pve key); `None` when the path names no product.
    pub fn guess_for(url: &Url) -> Option<Product> {
        url.path_segments()?.rev().find_map(|s| match s {
            "pve" => Some(Product::Pve),
            "pbs" => Some(Product::Pbs),
            "pmg" => Some(Product::Pmg),
            ceph if ceph.starts_with("ceph-") => Some(Product::Pve),
            _ => None,
        })
    }
}

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One letter: the support level (c, b, s, p).
fn is_level(s: &str) -> bool {
    s.len() == 1 && s.chars().all(|c| c.is_ascii_lowercase())
}

/// Socket count then level: `4b`, `16p`.
fn is_sockets_and_level(s: &str) -> bool {
    let digits = s.chars().take_while(char::is_ascii_digit).count();
    digits > 0 && is_level(&s[digits..])
}

/// A subscription key. `Debug` and `Display` mask it; [`SubscriptionKey::expose`] is the one way
/// to the secret (for the Authorization header and for writing a config file).
#[derive(Clone, PartialEq, Eq)]
pub struct SubscriptionKey(String);

impl SubscriptionKey {
    pub fn new(key: String) -> SubscriptionKey {
        SubscriptionKey(key)
    }

    /// The key itself. Only for sending it upstream or writing it to the config file.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `pve4b-12…(masked)`: the product part, two characters of the id, no more.
    pub fn masked(&self) -> String {
        let (prefix, id) = self.0.split_once('-').unwrap_or(("", ""));
        let shown: String = id.chars().take(SHOWN_ID_CHARS).collect();
        if prefix.is_empty() || id.chars().count() <= 2 * SHOWN_ID_CHARS {
            return "(masked)".into();
        }
        format!("{prefix}-{shown}…(masked)")
    }
}

impl fmt::Debug for SubscriptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Display for SubscriptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// A server id: 32 hex digits.
pub fn server_id(id: &str) -> Result<(), String> {
    if id.len() == SERVER_ID_LEN && id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(());
    }
    Err(format!("must be {SERVER_ID_LEN} hexadecimal digits (the server ID of the host the key is registered to)"))
}

/// One `[[subscription]]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub key: SubscriptionKey,
    /// The server id the key is registered to; the basic-auth password. Not secret on its own,
    /// but half of the credential, so `Debug` does not show it either.
    pub server_id: ServerId,
    pub product: Product,
}

/// A server id; `Debug` hides it (see [`Subscription::server_id`]).
#[derive(Clone, PartialEq, Eq)]
pub struct ServerId(pub String);

impl fmt::Debug for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(hidden)")
    }
}

impl Subscription {
    /// Appended to a 401/403 answered to a request that carried this key.
    pub fn rejected_hint(&self) -> String {
        format!(
            "upstream rejected the subscription key for {} ({}): check key and server-id of that [[subscription]]",
            self.product, self.key
        )
    }
}

/// Appended to a 401/403 answered to a request without credentials, for an entry of `url`.
pub fn missing_hint(url: &Url) -> String {
    let product = Product::guess_for(url).map_or("<product>", Product::name);
    format!("needs a subscription: add [[subscription]] and use-subscription = \"{product}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_of_key() {
        let cases: &[(&str, Option<Product>)] = &[
            ("pve4b-1234567890", Some(Product::Pve)),
            ("pve16p-0a1b2c3d4e", Some(Product::Pve)),
            ("pve1c-X", Some(Product::Pve)),
            ("pbsc-1234567890", Some(Product::Pbs)),
            ("pmgp-1234567890", Some(Product::Pmg)),
            ("pom-1234567890", Some(Product::Pom)),
            ("pveb-1234567890", None),   // no socket count
            ("pve4-1234567890", None),   // no level
            ("pve4bb-1234567890", None), // two level letters
            ("pbs4c-1234567890", None),  // pbs keys have no socket count
            ("pmg-1234567890", None),
            ("pomx-1234567890", None),
            ("PVE4B-1234567890", None),
            ("pve4b-", None),
            ("pve4b-12 34", None),
            ("pve4b1234567890", None),
            ("pve4b-12…(masked)", None),
            ("", None),
            ("xyz4b-1234567890", None),
        ];
        for (key, want) in cases {
            assert_eq!(Product::of_key(key).ok(), *want, "{key:?}");
            if let Err(reason) = Product::of_key(key) {
                if key.len() > 6 {
                    assert!(!reason.contains(&key[6..]), "{key:?}: reason quotes the key: {reason}");
                }
            }
        }
        assert!(Product::of_key("pve4b-12…(masked)").unwrap_err().contains("masked"));
    }

    #[test]
    fn product_names_and_guesses() {
        for p in Product::ALL {
            assert_eq!(Product::parse(p.name()), Ok(p));
        }
        assert!(Product::parse("ceph").unwrap_err().contains("pve, pbs, pmg, pom"));
        let guess = |u: &str| Product::guess_for(&Url::parse(u).expect("url"));
        assert_eq!(guess("https://enterprise.proxmox.com/debian/pve/"), Some(Product::Pve));
        assert_eq!(guess("https://enterprise.proxmox.com/debian/pbs"), Some(Product::Pbs));
        assert_eq!(guess("https://enterprise.proxmox.com/debian/pmg/"), Some(Product::Pmg));
        assert_eq!(guess("https://enterprise.proxmox.com/debian/ceph-squid/"), Some(Product::Pve));
        assert_eq!(guess("http://download.proxmox.com/debian/pbs-client/"), None);
        assert_eq!(guess("https://deb.debian.org/debian/"), None);
        let hint = missing_hint(&Url::parse("https://deb.example/private/").expect("url"));
        assert!(hint.contains("use-subscription = \"<product>\""), "{hint}");
    }

    #[test]
    fn keys_print_masked() {
        let cases: &[(&str, &str)] = &[
            ("pve4b-1234567890", "pve4b-12…(masked)"),
            ("pom-abcdef12345", "pom-ab…(masked)"),
            ("pbsc-1234", "(masked)"),
            ("nonsense", "(masked)"),
        ];
        for (key, want) in cases {
            let k = SubscriptionKey::new((*key).into());
            assert_eq!(k.masked(), *want);
            assert_eq!(format!("{k}"), *want);
            assert_eq!(format!("{k:?}"), *want);
            assert_eq!(k.expose(), *key);
        }
        let sub = Subscription {
            key: SubscriptionKey::new("pve4b-1234567890".into()),
            server_id: ServerId("0123456789abcdef0123456789ABCDEF".into()),
            product: Product::Pve,
        };
        let shown = format!("{sub:?} {}", sub.rejected_hint());
        assert!(!shown.contains("1234567890") && !shown.contains("0123456789abcdef"), "{shown}");
        assert!(sub.rejected_hint().contains("rejected the subscription key for pve"));
    }

    #[test]
    fn server_ids() {
        assert!(server_id("0123456789abcdef0123456789ABCDEF").is_ok());
        for bad in ["", "0123456789ABCDEF", "0123456789abcdef0123456789abcdeg", "0123456789abcdef0123456789abcdef0"] {
            assert!(server_id(bad).is_err(), "{bad:?}");
        }
    }
}
