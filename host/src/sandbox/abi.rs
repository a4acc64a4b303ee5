//! The ABI versions this host speaks, and where a version's behaviour is chosen.
//!
//! A module declares its version in its metadata records (`docs/ABI.md`, *Versioning*); the
//! pre-pass at upload reads it ([`super::inspect`]) and the [`super::Program`] keeps it. Every
//! place where versions would differ matches on [`Abi`]: the exports a program must have
//! ([`super::Sandbox`]'s `program`) and how a call hands params over and reads the output
//! ([`super::call`]). Stored v1 modules keep loading at start-up and keep being called the v1
//! way next to v2 modules.

/// One ABI version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abi {
    /// `fnhost_alloc` + `fnhost_call_<f>(ptr, len) -> i64`, JSON in and out (`docs/ABI.md`).
    V1,
    /// `fnhost_call_<f>(len) -> i64` alone: the guest pulls its params with the `fnhost.params`
    /// import, so a call enters the guest once (`docs/ABI.md`).
    V2,
}

/// Every version this host serves, oldest first.
pub const SUPPORTED: [Abi; 2] = [Abi::V1, Abi::V2];

impl Abi {
    /// The number a module declares.
    pub const fn version(self) -> u32 {
        match self {
            Abi::V1 => 1,
            Abi::V2 => 2,
        }
    }

    /// The version numbered `v`, if this host speaks it.
    pub fn from_version(v: u64) -> Option<Self> {
        SUPPORTED.into_iter().find(|a| u64::from(a.version()) == v)
    }

    /// The newest version this host speaks (what the SDK builds).
    pub fn newest() -> Self {
        SUPPORTED[SUPPORTED.len() - 1]
    }
}

/// "ABI v1", or "ABI v1 and v2", for messages.
pub fn spoken() -> String {
    let versions: Vec<String> = SUPPORTED
        .iter()
        .map(|a| format!("v{}", a.version()))
        .collect();
    match versions.split_last() {
        Some((last, [])) => format!("ABI {last}"),
        Some((last, rest)) => format!("ABI {} and {last}", rest.join(", ")),
        None => "no ABI".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip_and_the_sdk_builds_the_newest() {
        for abi in SUPPORTED {
            assert_eq!(Abi::from_version(abi.version().into()), Some(abi));
        }
        assert_eq!(Abi::from_version(0), None);
        assert_eq!(Abi::from_version(7), None);
        assert_eq!(Abi::newest().version(), fnhost_abi::ABI_VERSION);
        assert_eq!(spoken(), "ABI v1 and v2");
    }
}
