//! The announcements of new changes: a background task holding its own connection (not a
//! pooled one) that `LISTEN`s on [`CHANNEL`] and hands each notified change number to
//! [`Store::watch`](crate::store::Store::watch)'s receivers.
//!
//! When the connection is lost the task says so ([`Listener::healthy`] turns false), waits a
//! bounded, growing while (0.1 s doubling up to 5 s), and connects again; once listening
//! again it announces the last change number, so a replica that missed notifications while
//! it was down looks. A quiet connection is checked every few seconds, so a server that went
//! away without a word is noticed too. The task ends when the store is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_postgres::{AsyncMessage, NoTls};

/// The channel every mutation notifies, with its change number as the payload.
pub const CHANNEL: &str = "fnhost_changes";

/// How long a check of a quiet connection may take before it counts as lost.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a quiet connection is checked.
const PROBE_EVERY: Duration = Duration::from_secs(3);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The running task's handles; dropping it stops the task.
#[derive(Debug)]
pub struct Listener {
    /// Whether the LISTEN connection is up now.
    healthy: Arc<AtomicBool>,
    /// Where announcements go; receivers come from it.
    announce: broadcast::Sender<u64>,
    /// Dropped with the store: the task sees its receiver close and ends.
    _stop: oneshot::Sender<()>,
}

impl Listener {
    /// Starts the task for the server `config` names.
    pub fn start(config: tokio_postgres::Config) -> Listener {
        let healthy = Arc::new(AtomicBool::new(false));
        let (announce, _) = broadcast::channel(1024);
        let (stop_tx, stop) = oneshot::channel();
        tokio::spawn(run(config, healthy.clone(), announce.clone(), stop));
        Listener {
            healthy,
            announce,
            _stop: stop_tx,
        }
    }

    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<u64> {
        self.announce.subscribe()
    }
}

async fn run(
    config: tokio_postgres::Config,
    healthy: Arc<AtomicBool>,
    announce: broadcast::Sender<u64>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut backoff = BACKOFF_FIRST;
    loop {
        tokio::select! {
            _ = &mut stop => return,
            outcome = listen(&config, &healthy, &announce) => {
                healthy.store(false, Ordering::Relaxed);
                match outcome {
                    // It was up: start the waits over.
                    Ok(why) => {
                        tracing::warn!(%why, "lost the store's change notifications; reconnecting");
                        backoff = BACKOFF_FIRST;
                    }
                    Err(why) => {
                        tracing::debug!(%why, ?backoff, "cannot listen for store changes yet");
                    }
                }
            }
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Connects, listens and forwards until the connection is lost: `Err` when it never got to
/// listen, `Ok(why it ended)` after it did.
async fn listen(
    config: &tokio_postgres::Config,
    healthy: &AtomicBool,
    announce: &broadcast::Sender<u64>,
) -> Result<String, String> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
    // The connection must be polled for the client's queries to go through; notifications
    // come out of the same polling.
    let (messages, mut incoming) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
            let end = !matches!(message, Some(Ok(_)));
            if messages.send(message).is_err() || end {
                return;
            }
        }
    });
    let _driver = AbortOnDrop(driver);
    let setup = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        client
            .query_one("SELECT coalesce(max(seq), 0) FROM changes", &[])
            .await
    };
    let last: i64 = tokio::time::timeout(PROBE_TIMEOUT, setup)
        .await
        .map_err(|_| "LISTEN timed out".to_owned())?
        .map_err(|e| e.to_string())?
        .get(0);
    healthy.store(true, Ordering::Relaxed);
    tracing::debug!(last, "listening for store changes");
    if last > 0 {
        let _ = announce.send(last as u64);
    }
    let mut probe = tokio::time::interval(PROBE_EVERY);
    probe.tick().await;
    loop {
        tokio::select! {
            message = incoming.recv() => match message.flatten() {
                Some(Ok(AsyncMessage::Notification(n))) if n.channel() == CHANNEL => {
                    if let Ok(seq) = n.payload().parse::<u64>() {
                        let _ = announce.send(seq);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Ok(e.to_string()),
                None => return Ok("the connection closed".to_owned()),
            },
            _ = probe.tick() => {
                match tokio::time::timeout(PROBE_TIMEOUT, client.simple_query("SELECT 1")).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Ok(e.to_string()),
                    Err(_) => return Ok("the server stopped answering".to_owned()),
                }
            }
        }
    }
}

/// Stops the connection's driver with the connection's user.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
