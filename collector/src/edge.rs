//! The listeners' edge against hostile clients: a cap on open connections
//! in total and per client address, an idle timeout on every connection
//! (nothing read or written for `idle_timeout_secs` closes it), and the
//! process's descriptor limit raised to what the caps need. The header-read
//! timeout is hyper's (`server.rs`).

use std::collections::HashMap;
use std::future::Ready;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// Open connections, all listeners together.
pub struct ConnLimits {
    max_total: usize,
    max_per_address: usize,
    idle: Duration,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Held by an admitted connection; gives its place back when dropped.
pub struct Permit {
    limits: Arc<ConnLimits>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut g = self.limits.lock();
        g.0 = g.0.saturating_sub(1);
        if let Some(n) = g.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                g.1.remove(&self.ip);
            }
        }
        metrics::gauge!("simpul_http_connections").decrement(1.0);
    }
}

impl ConnLimits {
    pub fn new(max_total: usize, max_per_address: usize, idle: Duration) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            max_total,
            max_per_address,
            idle,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, HashMap<IpAddr, usize>)> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for a connection from `ip`, or why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, &'static str> {
        let mut g = self.lock();
        if g.0 >= self.max_total {
            return Err("total connection limit");
        }
        let n = g.1.entry(ip).or_default();
        if *n >= self.max_per_address {
            return Err("per-address connection limit");
        }
        *n += 1;
        g.0 += 1;
        drop(g);
        metrics::gauge!("simpul_http_connections").increment(1.0);
        Ok(Permit {
            limits: self.clone(),
            ip,
        })
    }

    pub fn open(&self) -> usize {
        self.lock().0
    }
}

/// The acceptor in front of each listener (TLS wraps it).
#[derive(Clone)]
pub struct LimitAcceptor {
    pub limits: Arc<ConnLimits>,
}

impl<S> Accept<TcpStream, S> for LimitAcceptor {
    type Stream = Guarded<TcpStream>;
    type Service = S;
    type Future = Ready<io::Result<(Self::Stream, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let ip = match stream.peer_addr() {
            Ok(a) => a.ip(),
            Err(e) => return std::future::ready(Err(e)),
        };
        std::future::ready(match self.limits.admit(ip) {
            Ok(permit) => Ok((Guarded::new(stream, permit, self.limits.idle), service)),
            Err(why) => {
                metrics::counter!("simpul_http_connections_refused_total").increment(1);
                tracing::debug!(peer = %ip, why, "connection refused");
                Err(io::Error::other(why))
            }
        })
    }
}

/// A connection that ends after `idle` without progress either way.
pub struct Guarded<S> {
    inner: S,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    _permit: Permit,
}

impl<S> Guarded<S> {
    fn new(inner: S, permit: Permit, idle: Duration) -> Guarded<S> {
        Guarded {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            _permit: permit,
        }
    }

    fn progressed(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

use std::future::Future;

fn idle_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle")
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.progressed();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                if self.expired(cx) {
                    Poll::Ready(Err(idle_error()))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.progressed();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            // A peer that stops reading blocks writes: that is idle too.
            Poll::Pending => {
                if self.expired(cx) {
                    Poll::Ready(Err(idle_error()))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Raise the soft descriptor limit to the hard one; returns the soft limit
/// in force. The caps must fit under it with room for the database, the
/// log and the notifier.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// Hand memory freed after a burst (thousands of connections, each with its
/// buffers) back to the system. glibc keeps freed heap in its arenas: after
/// 2,000 live-feed clients closed, RSS stayed ~30 MB higher until a
/// `malloc_trim` (bench/hostile.sh). Cheap when there is nothing to give.
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists; it takes no
    // pointers from us and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_and_in_total() {
        let l = ConnLimits::new(3, 2, Duration::from_secs(1));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let p1 = l.admit(a).unwrap();
        let _p2 = l.admit(a).unwrap();
        assert_eq!(l.admit(a).err(), Some("per-address connection limit"));
        let _p3 = l.admit(b).unwrap();
        assert_eq!(l.admit(b).err(), Some("total connection limit"));
        drop(p1);
        assert_eq!(l.open(), 2);
        assert!(l.admit(a).is_ok());
    }
}
