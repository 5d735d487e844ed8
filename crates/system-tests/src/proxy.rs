//! A round-robin TCP front for several instances of a service: what a deployment's load
//! balancer (a Kubernetes Service, haproxy) is to clients, small enough to run inside the test.
//!
//! Each accepted connection goes to the next instance in turn and its bytes are copied both
//! ways until either side closes. It hides nothing a real balancer would not: a connection
//! whose instance dies mid-request ends for the client too (the request fails, and the ledger
//! counts it refused, never accepted). Only a connection that no instance accepted yet (the
//! instance's port refuses: it is down) is offered to the next instance, as a balancer's
//! health check or `option redispatch` would; nothing of the request has been sent then, so it
//! cannot have had an effect.
//!
//! Like a Kubernetes Service (kube-proxy's DNAT), it keeps the client's address: the connection
//! to the instance is made from the client's IP (any 127.0.0.0/8 address works on loopback), so
//! what task-api limits per address (failed logins) still sees each client apart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// What the front did, per instance.
#[derive(Debug, Default)]
struct Tally {
    next: AtomicUsize,
    /// Connections each instance served.
    served: Vec<AtomicUsize>,
    /// Connections an instance refused (it was down) that went to another one.
    redispatched: AtomicUsize,
    /// Connections no instance accepted (the client saw its connection closed).
    refused: AtomicUsize,
}

/// A running front; stops when dropped.
pub struct RoundRobin {
    addr: SocketAddr,
    tally: Arc<Tally>,
    task: tokio::task::JoinHandle<()>,
}

impl RoundRobin {
    /// Listen on a free port of 127.0.0.1 and spread connections over `instances`.
    pub async fn start(instances: Vec<SocketAddr>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tally = Arc::new(Tally {
            served: instances.iter().map(|_| AtomicUsize::new(0)).collect(),
            ..Tally::default()
        });
        let instances = Arc::new(instances);
        let task = tokio::spawn({
            let tally = tally.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(forward(client, instances.clone(), tally.clone()));
                }
            }
        });
        Self { addr, tally, task }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections each instance served so far, in the order of the instances.
    pub fn served(&self) -> Vec<usize> {
        self.tally
            .served
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect()
    }

    /// Connections redispatched because their instance was down, and connections refused
    /// because every instance was.
    pub fn rerouted_and_refused(&self) -> (usize, usize) {
        (
            self.tally.redispatched.load(Ordering::Relaxed),
            self.tally.refused.load(Ordering::Relaxed),
        )
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(mut client: TcpStream, instances: Arc<Vec<SocketAddr>>, tally: Arc<Tally>) {
    let first = tally.next.fetch_add(1, Ordering::Relaxed);
    for attempt in 0..instances.len() {
        let i = (first + attempt) % instances.len();
        let Ok(mut upstream) = connect_from(&client, instances[i]).await else {
            continue;
        };
        tally.served[i].fetch_add(1, Ordering::Relaxed);
        if attempt > 0 {
            tally.redispatched.fetch_add(1, Ordering::Relaxed);
        }
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        // Either side ending (or failing) ends the connection for both.
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        return;
    }
    tally.refused.fetch_add(1, Ordering::Relaxed);
}

/// Connect to `instance` from the client's own IP address.
async fn connect_from(client: &TcpStream, instance: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(client.peer_addr()?.ip(), 0))?;
    socket.connect(instance).await
}
