//! The gRPC port's worker threads: one single-threaded runtime per thread, each serving the
//! connections dealt to it with the router's HTTP/2 relay and forwarding on its own connection
//! to every backend.
//!
//! With one multi-threaded runtime, a unary call crossed threads three or four times (the client
//! connection's task, the call's task, the backend connection's task), and each crossing cost a
//! futex wake-up; on a loaded machine that was most of the proxy's added latency
//! (docs/benchmarks.md). Here a connection, its calls and the backend connection they use all
//! live on one thread. One acceptor on the main runtime deals new connections out in turn.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sc_router::coalesce::Coalesce;
use sc_router::relay::{ConnectionInfo, Relay};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, warn};

use crate::listen::{IdleTimeout, accept};
use crate::tls::{HANDSHAKE_TIMEOUT, ReloadableTls};

type Accepted = (std::net::TcpStream, SocketAddr);

/// Running workers: where to send connections, and how each ended.
pub(crate) struct Workers {
    senders: Vec<mpsc::UnboundedSender<Accepted>>,
    done: Vec<oneshot::Receiver<Result<(), String>>>,
}

impl Workers {
    /// Starts `threads` workers.
    pub(crate) fn start(
        threads: usize,
        relay: &Relay,
        tls: Option<Arc<ReloadableTls>>,
        idle_timeout: Duration,
        stop: &watch::Receiver<bool>,
    ) -> std::io::Result<Workers> {
        let mut workers = Workers {
            senders: Vec::with_capacity(threads),
            done: Vec::with_capacity(threads),
        };
        for lane in 0..threads {
            let (tx, rx) = mpsc::unbounded_channel();
            let (done_tx, done_rx) = oneshot::channel();
            let worker = Worker {
                lane,
                connections: rx,
                relay: relay.clone(),
                tls: tls.clone(),
                idle_timeout,
                stop: stop.clone(),
            };
            std::thread::Builder::new()
                .name(format!("grpc-worker-{lane}"))
                .spawn(move || {
                    let _ = done_tx.send(worker.run());
                })?;
            workers.senders.push(tx);
            workers.done.push(done_rx);
        }
        Ok(workers)
    }

    /// Accepts connections and deals them out in turn until `stop`; then waits for the workers,
    /// which let running calls finish.
    pub(crate) async fn serve(
        self,
        listener: TcpListener,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), String> {
        let Workers { mut senders, done } = self;
        let mut next = 0;
        loop {
            let (stream, addr) = tokio::select! {
                accepted = accept(&listener) => accepted,
                _ = stop.wait_for(|stop| *stop) => break,
            };
            let mut accepted = match stream.into_std() {
                Ok(stream) => (stream, addr),
                Err(e) => {
                    warn!(peer = %addr, error = %e, "cannot hand a connection over");
                    continue;
                }
            };
            // A worker that stopped (it cannot, short of a bug) leaves the rotation; the
            // connection goes to the next one.
            loop {
                if senders.is_empty() {
                    return Err("every gRPC worker thread stopped".into());
                }
                next %= senders.len();
                match senders[next].send(accepted) {
                    Ok(()) => {
                        next += 1;
                        break;
                    }
                    Err(mpsc::error::SendError(back)) => {
                        tracing::error!(
                            worker = next,
                            "a gRPC worker thread stopped; serving on the others"
                        );
                        senders.remove(next);
                        accepted = back;
                    }
                }
            }
        }
        drop(listener);
        drop(senders);
        for (lane, done) in done.into_iter().enumerate() {
            match done.await {
                Ok(result) => result?,
                Err(_) => return Err(format!("gRPC worker {lane} panicked")),
            }
        }
        Ok(())
    }
}

struct Worker {
    lane: usize,
    connections: mpsc::UnboundedReceiver<Accepted>,
    relay: Relay,
    tls: Option<Arc<ReloadableTls>>,
    idle_timeout: Duration,
    stop: watch::Receiver<bool>,
}

impl Worker {
    fn run(self) -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start gRPC worker {}: {e}", self.lane))?;
        sc_router::use_connection_lane(self.lane);
        runtime.block_on(self.serve())
    }

    /// Serves every connection dealt to this thread, each on a task of its own, until `stop`;
    /// then lets the connections' calls finish (each connection is told to go away).
    async fn serve(self) -> Result<(), String> {
        let Worker {
            mut connections,
            relay,
            tls,
            idle_timeout,
            mut stop,
            ..
        } = self;
        let mut running = tokio::task::JoinSet::new();
        loop {
            let accepted = tokio::select! {
                accepted = connections.recv() => accepted,
                _ = stop.wait_for(|stop| *stop) => None,
            };
            let Some((stream, peer)) = accepted else {
                break;
            };
            // Finished connections leave the set as new ones arrive.
            while running.try_join_next().is_some() {}
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => IdleTimeout::new(stream, idle_timeout),
                Err(e) => {
                    warn!(peer = %peer, error = %e, "cannot take a connection over");
                    continue;
                }
            };
            let relay = relay.clone();
            let tls = tls.clone();
            let stop = stop.clone();
            running.spawn(serve_connection(relay, stream, peer, tls, stop));
        }
        while running.join_next().await.is_some() {}
        Ok(())
    }
}

/// One client connection: its TLS handshake if any (on this thread), then the relay until the
/// connection closes or the proxy stops.
async fn serve_connection(
    relay: Relay,
    stream: IdleTimeout,
    peer: SocketAddr,
    tls: Option<Arc<ReloadableTls>>,
    mut stop: watch::Receiver<bool>,
) {
    let stopped = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    let mut info = ConnectionInfo {
        peer: Some(peer),
        certificate: None,
    };
    let served = match tls {
        None => relay.serve(Coalesce::new(stream), info, stopped).await,
        Some(tls) => {
            let handshake =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor().accept(stream)).await;
            let stream = match handshake {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return debug!(peer = %peer, error = %e, "TLS handshake failed"),
                Err(_) => return debug!(peer = %peer, "TLS handshake timed out"),
            };
            info.certificate = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|leaf| bytes::Bytes::copy_from_slice(leaf.as_ref()));
            relay.serve(Coalesce::new(stream), info, stopped).await
        }
    };
    if let Err(e) = served {
        debug!(peer = %peer, error = %e, "client connection failed");
    }
}
