//! A deterministic in-memory harness: two [`Connection`]s wired back to back with a virtual
//! clock (quinn-proto's `Pair`). No sockets, no sleeps: time only moves when a test says so.
//! Test-only (feature `__testing`); don't rely on it.

use std::time::{Duration, Instant};

use crate::connection::{Connection, ConnectionError, Event};
use crate::noise::Role;
use crate::stream::StreamConfig;

/// Which side of a [`Pair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The Noise initiator.
    Initiator,
    /// The Noise responder.
    Responder,
}

/// A side failed while the pair was driven.
#[derive(Debug, thiserror::Error)]
#[error("{side:?} failed: {error}")]
pub struct DriveError {
    /// Which side.
    pub side: Side,
    /// Its error.
    pub error: ConnectionError,
}

/// Two connections and a virtual clock.
#[derive(Debug)]
pub struct Pair {
    /// The initiator.
    pub initiator: Connection,
    /// The responder.
    pub responder: Connection,
    /// The virtual time.
    pub now: Instant,
}

/// Rounds after which [`Pair::drive`] reports a livelock.
const MAX_ROUNDS: usize = 10_000;

impl Pair {
    /// A pair with these configurations, at an arbitrary starting instant.
    pub fn new(initiator: StreamConfig, responder: StreamConfig) -> Self {
        let now = Instant::now();
        Self::from_connections(
            Connection::new(Role::Initiator, initiator, now),
            Connection::new(Role::Responder, responder, now),
            now,
        )
    }

    /// A pair of prepared connections created at `now`.
    pub fn from_connections(initiator: Connection, responder: Connection, now: Instant) -> Self {
        Self { initiator, responder, now }
    }

    fn side(&mut self, side: Side) -> (&mut Connection, &mut Connection) {
        match side {
            Side::Initiator => (&mut self.initiator, &mut self.responder),
            Side::Responder => (&mut self.responder, &mut self.initiator),
        }
    }

    /// Moves bytes from `from` to its peer; true if any moved.
    fn transfer(&mut self, from: Side) -> Result<bool, DriveError> {
        let now = self.now;
        let to = match from {
            Side::Initiator => Side::Responder,
            Side::Responder => Side::Initiator,
        };
        let (src, dst) = self.side(from);
        let mut moved = false;
        while let Some(bytes) =
            src.poll_transmit(now).map_err(|error| DriveError { side: from, error })?
        {
            moved = true;
            dst.handle_input(&bytes, now).map_err(|error| DriveError { side: to, error })?;
        }
        Ok(moved)
    }

    /// Delivers everything both sides send (with zero latency) until both are quiet.
    ///
    /// # Panics
    /// On a livelock (more than 10,000 rounds).
    pub fn drive(&mut self) -> Result<(), DriveError> {
        for _ in 0..MAX_ROUNDS {
            let a = self.transfer(Side::Initiator)?;
            let b = self.transfer(Side::Responder)?;
            if !a && !b {
                return Ok(());
            }
        }
        panic!("Pair::drive: livelock after {MAX_ROUNDS} rounds");
    }

    /// Jumps the clock to the earliest timer, fires it on both sides and drives. Returns false
    /// when no timer is armed.
    pub fn step(&mut self) -> Result<bool, DriveError> {
        let next = [self.initiator.poll_timeout(), self.responder.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(next) = next else { return Ok(false) };
        self.now = self.now.max(next);
        self.fire_timers()?;
        self.drive()?;
        Ok(true)
    }

    /// Moves the clock forward by `d`, firing due timers and driving.
    pub fn advance(&mut self, d: Duration) -> Result<(), DriveError> {
        self.now += d;
        self.fire_timers()?;
        self.drive()
    }

    fn fire_timers(&mut self) -> Result<(), DriveError> {
        let now = self.now;
        for side in [Side::Initiator, Side::Responder] {
            let (conn, _) = self.side(side);
            if conn.poll_timeout().is_some_and(|t| t <= now) {
                conn.handle_timeout(now).map_err(|error| DriveError { side, error })?;
            }
        }
        Ok(())
    }

    /// Drains the events of one side.
    pub fn events(&mut self, side: Side) -> Vec<Event> {
        let (conn, _) = self.side(side);
        std::iter::from_fn(|| conn.poll_event()).collect()
    }
}
