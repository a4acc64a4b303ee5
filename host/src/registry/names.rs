//! Name rules: what a module may be deployed as.

use crate::error::{Error, Kind};

/// Module names that would shadow the protocol's own methods (`system.*`, `rpc.*`).
pub const RESERVED_NAMES: [&str; 2] = ["rpc", "system"];

/// Checks a module name: `[a-z][a-z0-9_-]{0,62}`, not reserved.
pub fn validate_name(name: &str) -> Result<(), Error> {
    let mut bytes = name.bytes();
    let ok = matches!(bytes.next(), Some(b'a'..=b'z'))
        && name.len() <= 63
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'));
    if !ok {
        return Err(Error::new(
            Kind::BadName,
            format!(
                "invalid module name {name:?}: use lowercase letters, digits, `-` and `_`, \
                 starting with a letter, at most 63 characters"
            ),
        )
        .with("name", name));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(Error::new(
            Kind::BadName,
            format!("the module name `{name}` is reserved for the protocol's own methods"),
        )
        .with("name", name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["math", "a", "a-b_c9", &"a".repeat(63)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Math",
            "9a",
            "-a",
            "a.b",
            "a/b",
            "ä",
            &"a".repeat(64),
            "rpc",
            "system",
        ] {
            assert_eq!(validate_name(bad).unwrap_err().kind, Kind::BadName, "{bad}");
        }
    }
}
