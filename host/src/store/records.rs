//! The records the store keeps besides modules and names: caller keys and the audit log.
//! Plain data with serde shapes; what they mean is decided in `crate::keys` and
//! `crate::audit`.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// Who may call a function: anyone who reaches it, or only an invoke key covering it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Versions deployed before access modes existed are public, as they were.
    #[default]
    Public,
    Key,
}

impl std::str::FromStr for Access {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "public" => Ok(Access::Public),
            "key" => Ok(Access::Key),
            other => Err(format!(
                "{other:?} is not an access mode (`public` or `key`)"
            )),
        }
    }
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Call functions whose access is `key` and whose name its scope covers.
    Invoke,
    /// Deploy, remove and roll back names its scope covers.
    Deploy,
}

/// A caller key as stored: never its secret, only the secret's SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// `key_` and 16 hex digits; public (it is part of the secret's text, and of audit lines).
    pub id: String,
    /// A label for people ("billing-frontend").
    pub name: String,
    pub role: Role,
    /// Module names, name prefixes with `*` (`team-a-*`) or single functions (`billing.charge`).
    pub scope: Vec<String>,
    /// RFC 3339, UTC, seconds.
    pub created_at: String,
    /// After this instant (RFC 3339) the key is refused; `None`: never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Calls per second (with a burst of the same size) for an invoke key; `None`: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_s: Option<u32>,
    /// Caps on what a deploy key may ask for; `None`: the host maxima.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_fuel: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_mib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_timeout_ms: Option<u64>,
    /// SHA-256 of the secret: a 256-bit random secret needs no slow hash to resist guessing.
    pub secret_sha256: Digest,
}

/// One line of the audit log: an admin action, done or refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// 1, 2, 3, ... assigned by the store when appended.
    #[serde(default)]
    pub seq: u64,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// `admin`, a key id, or `anonymous` (no valid credentials).
    pub actor: String,
    /// The key's name, when the actor is a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    /// The client's address, when it came over the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// `deploy`, `remove`, `rollback`, `key_create`, `key_revoke`.
    pub action: String,
    /// The module name (or the key id, for key actions).
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Digest>,
    /// `ok`, or the error kind it was refused with (`forbidden`, `bad_module`, ...).
    pub outcome: String,
    /// The version a deploy or rollback made current, or why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
