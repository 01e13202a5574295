//! The tokio layer of replication (the only async code of the crate besides the [`Driver`]):
//! [`SharedCore`] shares one core between its sessions and its connections, [`Replication`] runs
//! one connection carrying any number of cores.
//!
//! [`Driver`]: crate::Driver

mod core;
mod stream;

pub use self::core::{CoreHead, CoreWrite, Download, GetError, GetOptions, SharedCore};
pub use self::stream::{
    RemoteOpenHook, Replication, ReplicationError, ReplicationHandle, ReplicationOptions,
};
