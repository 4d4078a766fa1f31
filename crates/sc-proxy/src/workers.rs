//! The gRPC port's worker threads: one single-threaded runtime per thread, each serving the
//! connections dealt to it and forwarding on its own connection to every backend.
//!
//! With one multi-threaded runtime, a unary call crossed threads three or four times (the client
//! connection's task, the call's task, the backend connection's task), and each crossing cost a
//! futex wake-up; on a loaded machine that was most of the proxy's added latency
//! (docs/benchmarks.md). Here a connection, its calls and the backend connection they use all
//! live on one thread. One acceptor on the main runtime deals new connections out in turn.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tracing::warn;

use sc_router::coalesce::Coalesce;

use crate::serve::{IdleTimeout, accept};
use crate::tls::{self, ReloadableTls};

/// The gRPC server every worker runs (the router behind the optional authentication layer).
pub(crate) type GrpcServer = tonic::transport::server::Router<
    tower::layer::util::Stack<
        tower::util::Either<sc_auth::GrpcAuthLayer, tower::layer::util::Identity>,
        tower::layer::util::Identity,
    >,
>;

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
        server: &GrpcServer,
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
                server: server.clone(),
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
    server: GrpcServer,
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

    async fn serve(self) -> Result<(), String> {
        let Worker {
            connections,
            server,
            tls,
            idle_timeout,
            mut stop,
            ..
        } = self;
        let (tx, rx) = mpsc::channel(64);
        // Registers each connection with this thread's runtime.
        tokio::spawn(async move {
            let mut connections = connections;
            while let Some((stream, addr)) = connections.recv().await {
                match tokio::net::TcpStream::from_std(stream) {
                    Ok(stream) => {
                        if tx
                            .send((IdleTimeout::new(stream, idle_timeout), addr))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    Err(e) => warn!(peer = %addr, error = %e, "cannot take a connection over"),
                }
            }
        });
        let stopped = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        let result = match tls {
            None => {
                let incoming = ReceiverStream::new(rx)
                    .map(|(stream, _)| Ok::<_, std::io::Error>(Coalesce::new(stream)));
                server.serve_with_incoming_shutdown(incoming, stopped).await
            }
            Some(tls) => {
                let incoming = ReceiverStream::new(tls::handshake_each(rx, tls))
                    .map(|(stream, _)| Ok::<_, std::io::Error>(Coalesce::new(stream)));
                server.serve_with_incoming_shutdown(incoming, stopped).await
            }
        };
        result.map_err(|e| e.to_string())
    }
}
