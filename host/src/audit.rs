//! The audit log: every admin action (deploy, remove, rollback, key create and revoke), done
//! or refused, with who (`admin`, a key id, or `anonymous`), from where, on what, and how it
//! ended. Appended through the store, so it survives restarts and is shared by replicas;
//! never the secret of a key.

use std::net::IpAddr;
use std::time::SystemTime;

use axum::Json;
use axum::http::StatusCode;
use serde_json::Value;

use crate::App;
use crate::digest::Digest;
use crate::error::Error;
use crate::keys::Key;
use crate::store::AuditEntry;

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub actor: String,
    pub key_name: Option<String>,
}

impl Who {
    pub fn admin() -> Self {
        Self {
            actor: "admin".into(),
            key_name: None,
        }
    }

    pub fn anonymous() -> Self {
        Self {
            actor: "anonymous".into(),
            key_name: None,
        }
    }

    pub fn key(key: &Key) -> Self {
        Self {
            actor: key.id().to_owned(),
            key_name: Some(key.record.name.clone()),
        }
    }
}

/// What an answer says about the thing it changed: its sha256 and a short detail.
pub trait Audited {
    fn digest_and_detail(&self) -> (Option<Digest>, Option<String>);
}

fn from_json(v: &Value) -> (Option<Digest>, Option<String>) {
    let digest = v["sha256"].as_str().and_then(|s| s.parse().ok());
    let detail = match (&v["version"], &v["versions"]) {
        (Value::Number(n), _) => Some(format!("version {n}")),
        (_, Value::Number(n)) => Some(format!("{n} versions")),
        _ => None,
    };
    (digest, detail)
}

impl Audited for (StatusCode, Json<Value>) {
    fn digest_and_detail(&self) -> (Option<Digest>, Option<String>) {
        from_json(&self.1.0)
    }
}

impl Audited for Json<Value> {
    fn digest_and_detail(&self) -> (Option<Digest>, Option<String>) {
        from_json(&self.0)
    }
}

/// Appends one entry for `action` on `target` by `who`, ending as `result`. A failure to
/// write it is logged (the action itself stands).
pub async fn record<T: Audited>(
    app: &App,
    who: &Who,
    client: Option<IpAddr>,
    action: &str,
    target: &str,
    result: &Result<T, Error>,
) {
    let (sha256, outcome, detail) = match result {
        Ok(done) => {
            let (digest, detail) = done.digest_and_detail();
            (digest, "ok".to_owned(), detail)
        }
        Err(e) => (None, e.kind.name().to_owned(), Some(e.message.clone())),
    };
    let entry = AuditEntry {
        seq: 0,
        time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        actor: who.actor.clone(),
        key_name: who.key_name.clone(),
        client: client.map(|c| c.to_string()),
        action: action.to_owned(),
        target: target.to_owned(),
        sha256,
        outcome,
        detail,
    };
    if let Err(e) = app.registry.store().append_audit(entry.clone()).await {
        tracing::error!(error = %e, ?entry, "cannot append to the audit log");
    }
}
