//! Graceful shutdown: one signal (SIGTERM or Ctrl-C) observed by every task.
//!
//! Tasks hold a [`Shutdown`] and select on [`Shutdown::wait`]; on the signal they stop taking
//! new work, finish what is in flight, and return.

use tokio::sync::watch;

#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
    tx: std::sync::Arc<watch::Sender<bool>>,
}

impl Shutdown {
    pub fn new() -> Self {
        let (tx, rx) = watch::channel(false);
        Self {
            rx,
            tx: std::sync::Arc::new(tx),
        }
    }

    /// Trigger shutdown (what the signal handler does; tests call it directly).
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown was triggered.
    pub async fn wait(&self) {
        let mut rx = self.rx.clone();
        // An error means the sender is gone, which only happens once everything is shutting down.
        let _ = rx.wait_for(|&stop| stop).await;
    }

    /// Trigger on SIGTERM or Ctrl-C. Spawns a task; call once from `main`.
    pub fn on_signals(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term =
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot listen for SIGTERM");
                            let _ = ctrl_c.await;
                            this.trigger();
                            return;
                        }
                    };
                tokio::select! {
                    _ = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
                    _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
                }
            }
            #[cfg(not(unix))]
            {
                let _ = ctrl_c.await;
            }
            this.trigger();
        });
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}
