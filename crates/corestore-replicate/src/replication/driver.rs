//! The tokio glue: runs a [`Connection`] over any `AsyncRead + AsyncWrite` (TCP, an in-memory
//! duplex, a pipe). It only moves bytes and time; all protocol logic is in the sans-IO core.
//!
//! Pull-based: [`Driver::next_event`] writes pending output, reads input and fires timers until
//! the connection has an event, which it returns. Issue commands between calls through
//! [`Driver::connection`]; their output goes out on the next call (or [`Driver::flush`]).

use std::io;
use std::pin::Pin;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::time::Instant;

use crate::connection::{Connection, ConnectionError, Event};

/// Bytes asked of one socket read at first and when input is sparse.
const MIN_READ: usize = 64 * 1024;
/// The most asked of one read, when every read fills what it asked for.
const MAX_READ: usize = 512 * 1024;
/// Output written at once while input events are still ready.
const WRITE_BATCH: usize = 64 * 1024;

/// Why a driven connection stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The protocol failed.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// The socket failed.
    #[error("transport: {0}")]
    Io(#[from] io::Error),
}

/// A [`Connection`] bound to a socket.
#[derive(Debug)]
pub struct Driver<T> {
    reader: ReadHalf<T>,
    writer: WriteHalf<T>,
    conn: Connection,
    write_buf: Option<Bytes>,
    /// An event taken from the connection but not returned yet (kept across a cancelled
    /// [`Driver::next_event`]).
    ready: Option<Event>,
    read_closed: bool,
    write_closed: bool,
    /// See [`Driver::batch_writes`].
    batch_writes: bool,
    read_size: ReadSize,
}

/// How much one socket read asks for: it doubles while reads fill what they asked and little
/// output waits (a bulk download then takes many frames per read, so their blocks are verified
/// and stored as one group; a peer sending requests faster than we answer them gets no bigger
/// reads, which would only delay the first answers of each read), and halves back while they
/// bring a quarter of it or less (an idle connection keeps a small buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReadSize(usize);

impl ReadSize {
    const START: Self = Self(MIN_READ);

    /// The size for the read after one that asked for `self.0` and got `got` bytes, with
    /// `output_waiting` bytes not yet written.
    fn after(self, got: usize, output_waiting: usize) -> Self {
        if got >= self.0 && output_waiting < MIN_READ {
            Self((self.0 * 2).min(MAX_READ))
        } else if got <= self.0 / 4 {
            Self((self.0 / 2).max(MIN_READ))
        } else {
            self
        }
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl<T: AsyncRead + AsyncWrite + Unpin> Driver<T> {
    /// The socket and the connection back (a handshake driven here, then raw I/O). Output not
    /// yet written is lost: [`Driver::flush`] first.
    pub fn into_parts(self) -> (T, Connection) {
        (self.reader.unsplit(self.writer), self.conn)
    }
}

impl<T: AsyncRead + AsyncWrite> Driver<T> {
    /// Binds `conn` to `io`.
    pub fn new(io: T, conn: Connection) -> Self {
        let (reader, writer) = tokio::io::split(io);
        Self {
            reader,
            writer,
            conn,
            write_buf: None,
            ready: None,
            read_closed: false,
            write_closed: false,
            batch_writes: false,
            read_size: ReadSize::START,
        }
    }

    /// Lets output wait while input events are ready (up to 64 KiB of it), so the answers to a
    /// burst of input leave in one write. Only for a caller that calls
    /// [`Driver::next_event`] again as soon as it handled an event: the output goes out when the
    /// events run out, which a caller that stops polling would never reach (the peer would then
    /// wait for bytes parked here).
    #[must_use]
    pub fn batch_writes(mut self) -> Self {
        self.batch_writes = true;
        self
    }

    /// The connection, to open channels and send messages.
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    fn next_write(&mut self) -> Result<Option<Bytes>, ConnectionError> {
        if let Some(buf) = self.write_buf.take().filter(|b| !b.is_empty()) {
            return Ok(Some(buf));
        }
        self.conn.poll_transmit(now())
    }

    /// Writes all pending output, then shuts the write side if the stream was ended.
    pub async fn flush(&mut self) -> Result<(), DriverError> {
        while let Some(buf) = self.next_write()? {
            self.writer.write_all(&buf).await?;
        }
        self.writer.flush().await?;
        self.shutdown_if_ended().await
    }

    async fn shutdown_if_ended(&mut self) -> Result<(), DriverError> {
        if self.conn.stream().is_write_ended() && !self.write_closed && self.write_buf.is_none() {
            self.write_closed = true;
            self.writer.shutdown().await?;
        }
        Ok(())
    }

    /// Writes as much pending output as the socket takes without waiting.
    async fn write_ready(&mut self) -> Result<(), DriverError> {
        loop {
            if self.write_buf.is_none() {
                self.write_buf = self.next_write()?;
            }
            let Some(buf) = self.write_buf.as_mut() else { return Ok(()) };
            let writer = &mut self.writer;
            let written = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(match Pin::new(&mut *writer).poll_write(cx, buf) {
                    std::task::Poll::Ready(r) => Some(r),
                    std::task::Poll::Pending => None,
                })
            })
            .await;
            match written {
                None => return Ok(()),
                Some(Ok(0)) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Some(Ok(n)) => {
                    let _ = buf.split_to(n.min(buf.len()));
                    if buf.is_empty() {
                        self.write_buf = None;
                    }
                }
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// The next event out of input already read, without any I/O (output waits for the next
    /// [`Driver::next_event`]); `None` once the read bytes are used up.
    pub fn buffered_event(&mut self) -> Option<Event> {
        self.ready.take().or_else(|| self.conn.poll_event())
    }

    /// Drives the connection until it has an event; `None` once the stream is over. Output
    /// produced so far is written as far as the socket accepts it without blocking before an
    /// event is returned, so a peer never waits on bytes parked here (unless
    /// [`Driver::batch_writes`] was asked for).
    ///
    /// Cancel-safe: dropping the future (a `select!` that took another branch) loses no event
    /// and no bytes; the next call carries on.
    pub async fn next_event(&mut self) -> Result<Option<Event>, DriverError> {
        loop {
            if self.ready.is_none() {
                self.ready = self.conn.poll_event();
            }
            if self.ready.is_some() {
                // With batched writes, output waits while input events are ready, so the
                // replies to a burst of requests go out in one write instead of one each; a
                // good amount of it goes out at once, and all of it before this driver waits
                // for input (below).
                if !self.batch_writes
                    || self.write_buf.is_some()
                    || self.conn.stream().queued_output() >= WRITE_BATCH
                {
                    self.write_ready().await?;
                }
                // Input is processed in bounded steps; yield between them once this task used
                // its budget, so a flooding peer cannot starve the runtime's other tasks. The
                // event waits in `self.ready`, so a caller that drops this future loses nothing.
                tokio::task::consume_budget().await;
                return Ok(self.ready.take());
            }
            if self.write_buf.is_none() {
                self.write_buf = self.next_write()?;
            }
            if self.write_buf.is_none() {
                self.writer.flush().await?;
                self.shutdown_if_ended().await?;
            }
            let busy = self.conn.can_progress();
            if self.read_closed && self.write_buf.is_none() && !busy {
                return Ok(None);
            }
            if busy {
                self.write_ready().await?;
                // A step that produced no event (messages for a channel nobody opened, dropped
                // as protomux does) still yields: a peer flooding those cannot hold the thread
                // for a whole budget of steps (measured: other peers' worst round trip under
                // four such floods went from 1.7 s to 84 ms).
                tokio::task::yield_now().await;
                continue;
            }
            let deadline = self.conn.poll_timeout().map(Instant::from_std);
            let reading = !self.read_closed && self.conn.wants_input();
            if reading {
                // Read straight into the connection's buffer: a frame split across reads is
                // never copied again. An empty buffer grown by a burst is let go once reads
                // are back to the least (not on every shrink: under load read sizes swing, and
                // each new large buffer would be fresh pages to fault in).
                let buf = self.conn.input_buf();
                if self.read_size == ReadSize::START
                    && buf.is_empty()
                    && buf.capacity() > 4 * MIN_READ
                {
                    *buf = bytes::BytesMut::new();
                }
                buf.reserve(self.read_size.0);
            }
            tokio::select! {
                written = async {
                    match &self.write_buf {
                        Some(buf) => self.writer.write(buf).await,
                        None => std::future::pending().await,
                    }
                } => {
                    let n = written?;
                    if n == 0 {
                        return Err(io::Error::from(io::ErrorKind::WriteZero).into());
                    }
                    if let Some(buf) = &mut self.write_buf {
                        let _ = buf.split_to(n.min(buf.len()));
                    }
                    if self.write_buf.as_ref().is_some_and(Bytes::is_empty) {
                        self.write_buf = None;
                    }
                }
                read = self.reader.read_buf(self.conn.input_buf()), if reading => {
                    let got = read?;
                    let waiting = self.conn.stream().queued_output()
                        + self.write_buf.as_ref().map_or(0, Bytes::len);
                    self.read_size = self.read_size.after(got, waiting);
                    if got == 0 {
                        self.read_closed = true;
                        self.conn.handle_eof(now())?;
                    } else {
                        self.conn.handle_buffered(now())?;
                    }
                }
                () = async {
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.conn.handle_timeout(now())?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_that_fill_the_buffer_double_it_up_to_the_most() {
        let mut size = ReadSize::START;
        for _ in 0..10 {
            size = size.after(size.0, 0);
        }
        assert_eq!(size, ReadSize(MAX_READ));
        assert_eq!(ReadSize(MIN_READ).after(MIN_READ, 0), ReadSize(2 * MIN_READ));
    }

    #[test]
    fn full_reads_do_not_grow_it_while_output_waits() {
        let size = ReadSize(2 * MIN_READ);
        assert_eq!(size.after(2 * MIN_READ, MIN_READ), size, "answers are waiting: no growth");
        assert_eq!(size.after(100, MIN_READ), ReadSize::START, "small reads still shrink it");
    }

    #[test]
    fn small_reads_halve_it_down_to_the_least_and_middling_ones_keep_it() {
        let big = ReadSize(MAX_READ);
        assert_eq!(big.after(MAX_READ / 2, 0), big, "half full keeps the size");
        assert_eq!(big.after(MAX_READ / 4, 0), ReadSize(MAX_READ / 2));
        let mut size = big;
        for _ in 0..10 {
            size = size.after(100, 0);
        }
        assert_eq!(size, ReadSize::START);
        assert_eq!(size.after(0, 0), ReadSize::START, "end of stream");
    }
}
